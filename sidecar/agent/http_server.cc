// The agent's routes (/healthz, /readyz, /v1/status, /metrics) on HttpServer; see http_server.h.
#include "sidecar/agent/http_server.h"

#include <spdlog/spdlog.h>

#include "sidecar/agent/status_json.h"

namespace modelswap::agent {

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                      SnapshotFn snapshot, HttpExtras extras) {
  // The routes take no bodies: a small cap keeps what a client can make the agent buffer small.
  std::unique_ptr<HttpServer> s(new HttpServer(
      HttpServerOptions{.addr = listen, .name = "agent http", .max_body_bytes = 4096}));
  s->http_.Route("/healthz", {"GET"}, [](const HttpRequest&) { return HttpReply{.body = "ok\n"}; });
  s->http_.Route("/readyz", {"GET"}, [snapshot](const HttpRequest&) {
    return AllReady(snapshot())
               ? HttpReply{.body = "ready\n"}
               : HttpReply{.code = 503, .body = "not ready: a model has no active version\n"};
  });
  s->http_.Route("/v1/status", {"GET"}, [snapshot, extras](const HttpRequest&) {
    nlohmann::json status = StatusJson(snapshot());
    if (extras.regions) status["regions"] = extras.regions();
    if (extras.cache) {
      auto c = extras.cache();
      status["cache"] = c ? CacheStatusJson(*c) : nlohmann::json(nullptr);
    }
    return HttpReply{.content_type = "application/json", .body = status.dump()};
  });
  s->http_.Route("/metrics", {"GET"}, [snapshot, extras](const HttpRequest&) {
    std::string text = MetricsText(snapshot());
    if (extras.metrics_text) text += extras.metrics_text();
    return HttpReply{.content_type = "text/plain; version=0.0.4", .body = std::move(text)};
  });
  if (auto st = s->http_.Start(); !st) return Fail(st.error());
  spdlog::info("http listening addr={} port={}", listen, s->http_.port());
  return s;
}

HttpServer::~HttpServer() {
  http_.Stop();
}

}  // namespace modelswap::agent
