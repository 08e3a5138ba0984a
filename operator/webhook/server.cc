// HTTPS admission endpoint on cpprestsdk; see server.h.
#include "operator/webhook/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpprest/http_listener.h>
#include <boost/asio/ssl.hpp>

namespace modelswap::op {
namespace {

namespace http = web::http;
using http::experimental::listener::http_listener;
using http::experimental::listener::http_listener_config;

// cpprestsdk cannot report the port it bound for port 0: pick a free one first.
int FreePort(const std::string& host) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

Result<std::pair<std::string, int>> SplitAddr(const std::string& addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) {
    return Fail(Code::kInvalidArgument, "webhook listen address \"" + addr + "\" is not host:port");
  }
  std::string host = addr.substr(0, colon);
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(addr.substr(colon + 1), &used);
    if (used != addr.size() - colon - 1) port = -1;
  } catch (...) {
  }
  if (port < 0 || port > 65535) {
    return Fail(Code::kInvalidArgument, "webhook listen address \"" + addr + "\" has a bad port");
  }
  return std::make_pair(host.empty() ? std::string("0.0.0.0") : host, port);
}

// Configures one connection's SSL context: TLS 1.2+ and the current bundle.
void ConfigureTls(boost::asio::ssl::context& ctx,
                  const std::function<std::shared_ptr<const CertBundle>()>& certificate) {
  namespace ssl = boost::asio::ssl;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  std::shared_ptr<const CertBundle> b = certificate ? certificate() : nullptr;
  if (!b || b->cert_pem.empty()) {
    spdlog::error("webhook tls: no certificate loaded; refusing the handshake");
    return;
  }
  boost::system::error_code ec;
  ctx.use_certificate_chain(boost::asio::buffer(b->cert_pem), ec);
  if (!ec) ctx.use_private_key(boost::asio::buffer(b->key_pem), ssl::context::pem, ec);
  if (ec) spdlog::error("webhook tls: certificate not usable err=\"{}\"", ec.message());
}

void Handle(const WebhookServerOptions& o, http::http_request req) {
  const std::string path = req.relative_uri().path();
  if (path == "/healthz") {
    req.reply(http::status_codes::OK, "ok\n", "text/plain; charset=utf-8");
    return;
  }
  if (path != kMutatePodsPath) {
    req.reply(http::status_codes::NotFound, "not found\n", "text/plain; charset=utf-8");
    return;
  }
  if (req.method() != http::methods::POST) {
    req.reply(http::status_codes::MethodNotAllowed, "POST an AdmissionReview\n",
              "text/plain; charset=utf-8");
    return;
  }
  // The API server always sends a Content-Length; a chunked body would bypass the size cap.
  if (!req.headers().has(http::header_names::content_length)) {
    req.reply(http::status_codes::LengthRequired, "Content-Length required\n",
              "text/plain; charset=utf-8");
    return;
  }
  if (req.headers().content_length() > o.max_body_bytes) {
    req.reply(http::status_codes::RequestEntityTooLarge, "AdmissionReview too large\n",
              "text/plain; charset=utf-8");
    return;
  }
  auto start = std::chrono::steady_clock::now();
  std::string body = req.extract_utf8string(true).get();
  AdmissionOutcome out = o.review(body);
  auto took = std::chrono::steady_clock::now() - start;
  // Observed before replying, so a client that got its answer also sees it counted.
  if (o.observe) o.observe(out, std::chrono::duration_cast<std::chrono::nanoseconds>(took));
  req.reply(out.http_status, out.body, "application/json");
  if (out.verdict == AdmissionVerdict::kDenied || out.verdict == AdmissionVerdict::kBadRequest) {
    spdlog::info("admission denied status={} reason=\"{}\"", out.http_status, out.message);
  }
}

}  // namespace

WebhookServer::WebhookServer(WebhookServerOptions opts) : opts_(std::move(opts)) {}

WebhookServer::~WebhookServer() {
  Stop();
}

Status WebhookServer::Start() {
  if (!opts_.review) return Fail(Code::kInvalidArgument, "webhook server needs a review function");
  MS_ASSIGN_OR_RETURN(auto hp, SplitAddr(opts_.addr));
  port_ = hp.second == 0 ? FreePort(hp.first) : hp.second;
  std::string url = "https://" + hp.first + ":" + std::to_string(port_);
  try {
    http_listener_config cfg;
    auto certificate = opts_.certificate;
    cfg.set_ssl_context_callback(
        [certificate](boost::asio::ssl::context& ctx) { ConfigureTls(ctx, certificate); });
    listener_ = std::make_unique<http_listener>(web::uri(url), cfg);
    const WebhookServerOptions* o = &opts_;
    listener_->support([o](http::http_request req) {
      try {
        Handle(*o, req);
      } catch (const std::exception& e) {
        spdlog::error("webhook request failed err=\"{}\"", e.what());
        try {
          req.reply(http::status_codes::InternalError, "internal error\n");
        } catch (...) {
        }
      }
    });
    listener_->open().wait();
  } catch (const std::exception& e) {
    listener_.reset();
    return Fail(Code::kUnavailable, "webhook listen on " + url + ": " + e.what());
  }
  spdlog::info("webhook listening url={}{}", url, kMutatePodsPath);
  return Ok();
}

void WebhookServer::Stop() {
  if (!listener_) return;
  try {
    listener_->close().wait();
  } catch (...) {
  }
  listener_.reset();
}

}  // namespace modelswap::op
