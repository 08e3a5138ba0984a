// The agent's HTTP endpoints, on common/http_server.h's HttpServer:
//   GET /healthz    200 "ok" while the process serves (liveness)
//   GET /readyz     200 when every configured model has an active version, else 503
//   GET /v1/status  JSON (status_json.h), plus "regions" from the snapshot host when enabled
//   GET /metrics    Prometheus text, plus the snapshot host's metrics when enabled
// Anything else: 404; other methods: 405; a handler that throws: 500 (all from HttpServer).
//
// Thread safety: handlers run on the server's threads and only call the snapshot function and
// the extras, which must be thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/http_server.h"
#include "common/status.h"
#include "sidecar/agent/cache_janitor.h"
#include "sidecar/agent/model_agent.h"

namespace modelswap::agent {

// Parts of the agent besides the model loops that also report (the snapshot host). Each may be
// empty; each must be thread-safe.
struct HttpExtras {
  std::function<nlohmann::json()> regions;            // /v1/status "regions"
  std::function<std::string()> metrics_text;          // appended to /metrics
  std::function<std::optional<CacheStatus>()> cache;  // /v1/status "cache" (null: none)
};

class HttpServer {
 public:
  using SnapshotFn = std::function<std::vector<ModelStatus>()>;
  // listen: "HOST:PORT". Fails with kUnavailable if the address cannot be bound.
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                                 SnapshotFn snapshot,
                                                                 HttpExtras extras = {});
  ~HttpServer();
  // The bound port (useful with port 0).
  int port() const { return http_.port(); }

 private:
  explicit HttpServer(HttpServerOptions opts) : http_(std::move(opts)) {}
  ::modelswap::HttpServer http_;
};

}  // namespace modelswap::agent
