// Raw GETs for discovery and the Table format; see raw_request.h.
#include "tests/e2e/raw_request.h"

#include <cpprest/http_client.h>

#include <boost/asio/ssl.hpp>

#include "common/env.h"
#include "operator/kube/credentials.h"

namespace modelswap::op::e2e {

namespace http = web::http;

Result<RawResponse> RawGet(const ClusterConfig& cfg, const std::string& path_query,
                           const std::string& accept) {
  auto tokens = MakeTokenSource(DefaultEnv(), cfg);
  MS_ASSIGN_OR_RETURN(std::string token, tokens->Token());
  try {
    http::client::http_client_config c;
    c.set_timeout(std::chrono::seconds(30));
    c.set_validate_certificates(!cfg.insecure_skip_tls_verify);
    c.set_ssl_context_callback([cfg](boost::asio::ssl::context& ctx) {
      if (!cfg.ca_pem.empty()) ctx.add_certificate_authority(boost::asio::buffer(cfg.ca_pem));
      if (!cfg.client_cert_pem.empty()) {
        ctx.use_certificate_chain(boost::asio::buffer(cfg.client_cert_pem));
        ctx.use_private_key(boost::asio::buffer(cfg.client_key_pem),
                            boost::asio::ssl::context::pem);
      }
    });
    http::client::http_client client(cfg.server, c);
    http::http_request req(http::methods::GET);
    req.set_request_uri(path_query);
    req.headers().add("Accept", accept);
    if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
    http::http_response resp = client.request(req).get();
    RawResponse out;
    out.code = resp.status_code();
    out.content_type = resp.headers().content_type();
    out.body = resp.extract_string(true).get();
    return out;
  } catch (const std::exception& e) {
    return Fail(Code::kUnavailable, "GET " + path_query + ": " + e.what());
  }
}

Result<Json> RawGetJson(const ClusterConfig& cfg, const std::string& path_query,
                        const std::string& accept) {
  MS_ASSIGN_OR_RETURN(RawResponse r, RawGet(cfg, path_query, accept));
  if (r.code != 200) {
    return Fail(
        r.code == 404 ? Code::kNotFound : Code::kUnavailable,
        "GET " + path_query + ": HTTP " + std::to_string(r.code) + ": " + r.body.substr(0, 300));
  }
  Json doc = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return Fail(Code::kInvalidArgument,
                "GET " + path_query + ": not JSON: " + r.body.substr(0, 200));
  }
  return doc;
}

}  // namespace modelswap::op::e2e
