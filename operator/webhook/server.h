// WebhookServer: the HTTPS endpoint the API server calls: POST /mutate-pods (AdmissionReview in,
// AdmissionReview out) and GET /healthz, on a cpprestsdk http_listener with an OpenSSL context.
//
// The certificate is asked for on every new TLS connection (cpprestsdk builds one SSL context per
// connection and calls our callback), so a rotated bundle (CertManager::Reload) is served from
// the next connection on, without a restart; kept-alive connections finish on the old one.
// The admission decision is a function (admission.h's ReviewAdmission bound to the config and the
// cluster's sidecar support): this file only moves bytes and measures.
//
// Every replica serves the webhook, leader or not.
//
// Thread safety: Start/Stop from one thread. The callbacks run on cpprestsdk's thread pool,
// concurrently: they must be thread-safe (ReviewAdmission is pure; CertManager::Current locks).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "operator/webhook/admission.h"
#include "operator/webhook/certs.h"

namespace web::http::experimental::listener {
class http_listener;
}

namespace modelswap::op {

inline constexpr const char* kMutatePodsPath = "/mutate-pods";

struct WebhookServerOptions {
  std::string addr = ":9443";  // "host:port" or ":port"; port 0 picks a free one
  // The bundle to serve; called for each new connection. Null or empty = handshake fails.
  std::function<std::shared_ptr<const CertBundle>()> certificate;
  // Answers one AdmissionReview body.
  std::function<AdmissionOutcome(std::string_view body)> review;
  // Optional: called after each admission answer with how long it took (metrics, logs).
  std::function<void(const AdmissionOutcome&, std::chrono::nanoseconds)> observe;
  size_t max_body_bytes = 8 << 20;  // the API server's own request limit is ~3 MiB per object
};

class WebhookServer {
 public:
  explicit WebhookServer(WebhookServerOptions opts);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  [[nodiscard]] Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  WebhookServerOptions opts_;
  int port_ = 0;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener_;
};

}  // namespace modelswap::op
