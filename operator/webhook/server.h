// WebhookServer: the HTTPS endpoint the API server calls: POST /mutate-pods (AdmissionReview in,
// AdmissionReview out) and GET /healthz, on common/http_server.h's HttpServer. That server owns
// the transport hardening: 405 for other methods, 411 for a body without Content-Length (a
// chunked body would bypass the size cap), 413 from the declared length before any body is read,
// a deadline on reading the body, bodies read without holding a thread.
//
// The certificate is asked for on every new TLS connection, so a rotated bundle
// (CertManager::Reload) is served from the next connection on, without a restart; kept-alive
// connections finish on the old one.
// The admission decision is a function (admission.h's ReviewAdmission bound to the config and the
// cluster's sidecar support): this file only routes and measures.
//
// Every replica serves the webhook, leader or not.
//
// Thread safety: Start/Stop from one thread. The callbacks run on the server's threads,
// concurrently: they must be thread-safe (ReviewAdmission is pure; CertManager::Current locks).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/http_server.h"
#include "common/status.h"
#include "operator/webhook/admission.h"
#include "operator/webhook/certs.h"

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
  // A body must arrive within this; the API server gives up on a webhook after its
  // timeoutSeconds (at most 30 s, 10 s by default) anyway.
  std::chrono::milliseconds body_timeout{10'000};
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
  std::unique_ptr<HttpServer> http_;
};

}  // namespace modelswap::op
