// The admission endpoint's routes on HttpServer; see server.h.
#include "operator/webhook/server.h"

#include <spdlog/spdlog.h>

namespace modelswap::op {
namespace {

// The bundle's serving certificate and key, for the connection being accepted.
Result<TlsPem> ServingPem(const std::function<std::shared_ptr<const CertBundle>()>& certificate) {
  std::shared_ptr<const CertBundle> b = certificate ? certificate() : nullptr;
  if (!b || b->cert_pem.empty()) return Fail(Code::kFailedPrecondition, "no certificate loaded");
  return TlsPem{.cert_chain = b->cert_pem, .key = b->key_pem};
}

HttpReply Review(const WebhookServerOptions& o, const HttpRequest& req) {
  auto start = std::chrono::steady_clock::now();
  AdmissionOutcome out = o.review(req.body);
  auto took = std::chrono::steady_clock::now() - start;
  // Observed before replying, so a client that got its answer also sees it counted.
  if (o.observe) o.observe(out, std::chrono::duration_cast<std::chrono::nanoseconds>(took));
  if (out.verdict == AdmissionVerdict::kDenied || out.verdict == AdmissionVerdict::kBadRequest) {
    spdlog::info("admission denied status={} reason=\"{}\"", out.http_status, out.message);
  }
  return HttpReply{out.http_status, "application/json", std::move(out.body)};
}

}  // namespace

WebhookServer::WebhookServer(WebhookServerOptions opts) : opts_(std::move(opts)) {}

WebhookServer::~WebhookServer() {
  Stop();
}

Status WebhookServer::Start() {
  if (!opts_.review) return Fail(Code::kInvalidArgument, "webhook server needs a review function");
  auto certificate = opts_.certificate;
  http_ = std::make_unique<HttpServer>(
      HttpServerOptions{.addr = opts_.addr,
                        .name = "webhook",
                        .tls = [certificate] { return ServingPem(certificate); },
                        .max_body_bytes = opts_.max_body_bytes,
                        .body_timeout = opts_.body_timeout});
  http_->Route("/healthz", {"GET"}, [](const HttpRequest&) { return HttpReply{.body = "ok\n"}; });
  const WebhookServerOptions* o = &opts_;
  http_->Route(
      kMutatePodsPath, {"POST"}, [o](const HttpRequest& req) { return Review(*o, req); },
      HttpBody::kRequired);
  if (auto st = http_->Start(); !st) {
    http_.reset();
    return Fail(st.error());
  }
  port_ = http_->port();
  spdlog::info("webhook listening url=https://{}{}", http_->BoundAddress(), kMutatePodsPath);
  return Ok();
}

void WebhookServer::Stop() {
  if (http_) http_->Stop();
}

}  // namespace modelswap::op
