// The agent's HTTP endpoints (cpprestsdk http_listener):
//   GET /healthz    200 "ok" while the process serves (liveness)
//   GET /readyz     200 when every configured model has an active version, else 503
//   GET /v1/status  JSON (status_json.h)
//   GET /metrics    Prometheus text
// Anything else: 404; other methods: 405. cpprestsdk throws on bind failures and inside
// handlers; all of it is caught here and turned into an Error or a 500.
//
// Thread safety: handlers run on cpprestsdk's thread pool and only call the snapshot function,
// which must be thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "sidecar/agent/model_agent.h"

namespace modelswap::agent {

class HttpServer {
 public:
  using SnapshotFn = std::function<std::vector<ModelStatus>()>;
  // listen: "HOST:PORT". Fails with kUnavailable if the address cannot be bound.
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                                 SnapshotFn snapshot);
  ~HttpServer();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelswap::agent
