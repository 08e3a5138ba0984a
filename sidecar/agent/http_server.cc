// cpprestsdk listener for /healthz, /readyz, /v1/status, /metrics.
#include "sidecar/agent/http_server.h"

#include <cpprest/http_listener.h>
#include <spdlog/spdlog.h>

#include "sidecar/agent/status_json.h"

namespace modelswap::agent {

namespace http = web::http;
using http::experimental::listener::http_listener;

struct HttpServer::Impl {
  std::unique_ptr<http_listener> listener;
  SnapshotFn snapshot;
  HttpExtras extras;

  void Handle(http::http_request req) {
    try {
      if (req.method() != http::methods::GET) {
        req.reply(http::status_codes::MethodNotAllowed, "method not allowed\n");
        return;
      }
      std::string path = req.relative_uri().path();
      if (path == "/healthz") {
        req.reply(http::status_codes::OK, "ok\n");
      } else if (path == "/readyz") {
        bool ready = AllReady(snapshot());
        req.reply(ready ? http::status_codes::OK : http::status_codes::ServiceUnavailable,
                  ready ? "ready\n" : "not ready: a model has no active version\n");
      } else if (path == "/v1/status") {
        nlohmann::json status = StatusJson(snapshot());
        if (extras.regions) status["regions"] = extras.regions();
        req.reply(http::status_codes::OK, status.dump(), "application/json");
      } else if (path == "/metrics") {
        std::string text = MetricsText(snapshot());
        if (extras.metrics_text) text += extras.metrics_text();
        req.reply(http::status_codes::OK, text, "text/plain; version=0.0.4");
      } else {
        req.reply(http::status_codes::NotFound, "not found\n");
      }
    } catch (const std::exception& e) {
      spdlog::error("http path={} err=\"{}\"", req.relative_uri().path(), e.what());
      try {
        req.reply(http::status_codes::InternalError, "internal error\n");
      } catch (...) {
      }
    }
  }
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                      SnapshotFn snapshot, HttpExtras extras) {
  auto impl = std::make_unique<Impl>();
  impl->snapshot = std::move(snapshot);
  impl->extras = std::move(extras);
  try {
    impl->listener = std::make_unique<http_listener>(web::uri("http://" + listen));
    Impl* raw = impl.get();
    impl->listener->support([raw](http::http_request req) { raw->Handle(std::move(req)); });
    impl->listener->open().wait();
  } catch (const std::exception& e) {
    return Fail(Code::kUnavailable, "http listen " + listen + ": " + e.what());
  }
  spdlog::info("http listening addr={}", listen);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  try {
    impl_->listener->close().wait();
  } catch (const std::exception& e) {
    spdlog::warn("http close err=\"{}\"", e.what());
  }
}

}  // namespace modelswap::agent
