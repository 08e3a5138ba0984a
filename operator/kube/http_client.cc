// KubeClient over cpprestsdk; see http_client.h.
#include "operator/kube/http_client.h"

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <cpprest/uri.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ssl.hpp>

#include "operator/kube/api_error.h"

namespace modelswap::op {
namespace {

namespace http = web::http;
namespace client = web::http::client;

std::string Encode(const std::string& v) {
  return web::uri::encode_data_string(v);
}

void AddParam(std::string* q, const char* key, const std::string& value) {
  if (value.empty()) return;
  *q += q->empty() ? "?" : "&";
  *q += key;
  *q += "=" + Encode(value);
}

// Applies the config's TLS material; throws boost::system::system_error on bad PEM.
void ConfigureTls(const ClusterConfig& cfg, boost::asio::ssl::context& ctx) {
  if (!cfg.ca_pem.empty()) ctx.add_certificate_authority(boost::asio::buffer(cfg.ca_pem));
  if (!cfg.client_cert_pem.empty()) {
    ctx.use_certificate_chain(boost::asio::buffer(cfg.client_cert_pem));
    ctx.use_private_key(boost::asio::buffer(cfg.client_key_pem), boost::asio::ssl::context::pem);
  }
}

client::http_client_config MakeConfig(const ClusterConfig& cfg, std::chrono::seconds timeout) {
  client::http_client_config c;
  c.set_timeout(timeout);
  c.set_validate_certificates(!cfg.insecure_skip_tls_verify);
  c.set_ssl_context_callback([cfg](boost::asio::ssl::context& ctx) { ConfigureTls(cfg, ctx); });
  return c;
}

std::optional<int> RetryAfterHeader(const http::http_headers& headers) {
  auto it = headers.find("Retry-After");
  if (it == headers.end()) return std::nullopt;
  try {
    return std::stoi(it->second);
  } catch (...) {
    return std::nullopt;  // an HTTP-date form; the Status body usually carries seconds too
  }
}

}  // namespace

std::string ListQuery(const ListOptions& o) {
  std::string q;
  AddParam(&q, "labelSelector", o.label_selector);
  AddParam(&q, "fieldSelector", o.field_selector);
  AddParam(&q, "resourceVersion", o.resource_version);
  AddParam(&q, "resourceVersionMatch", o.resource_version_match);
  if (o.limit > 0) AddParam(&q, "limit", std::to_string(o.limit));
  AddParam(&q, "continue", o.continue_token);
  return q;
}

std::string WatchQuery(const WatchOptions& o) {
  std::string q = "?watch=1";
  AddParam(&q, "resourceVersion", o.resource_version);
  if (o.allow_bookmarks) q += "&allowWatchBookmarks=true";
  q += "&timeoutSeconds=" + std::to_string(o.timeout_seconds);
  AddParam(&q, "labelSelector", o.label_selector);
  AddParam(&q, "fieldSelector", o.field_selector);
  return q;
}

Result<std::unique_ptr<HttpKubeClient>> HttpKubeClient::Create(Env* env, const ClusterConfig& cfg,
                                                               HttpClientOptions opts) {
  if (cfg.server.rfind("https://", 0) != 0 && cfg.server.rfind("http://", 0) != 0) {
    return Fail(Code::kInvalidArgument, "api server URL \"" + cfg.server + "\" is not http(s)");
  }
  try {  // check the PEMs now: a bad one would otherwise fail every handshake later
    boost::asio::ssl::context probe(boost::asio::ssl::context::tls_client);
    ConfigureTls(cfg, probe);
  } catch (const std::exception& e) {
    return Fail(Code::kInvalidArgument,
                cfg.source +
                    ": TLS material (CA, client certificate or key) is not valid PEM: " + e.what());
  }
  auto tokens = MakeTokenSource(env, cfg);
  std::unique_ptr<HttpKubeClient> c(new HttpKubeClient(env, cfg, opts, std::move(tokens)));
  try {
    c->http_ =
        std::make_unique<client::http_client>(cfg.server, MakeConfig(cfg, opts.request_timeout));
  } catch (const std::exception& e) {
    return Fail(Code::kInvalidArgument, "api server URL " + cfg.server + ": " + e.what());
  }
  return c;
}

HttpKubeClient::HttpKubeClient(Env* env, ClusterConfig cfg, HttpClientOptions opts,
                               std::unique_ptr<TokenSource> tokens)
    : env_(env), cfg_(std::move(cfg)), opts_(std::move(opts)), tokens_(std::move(tokens)) {}

HttpKubeClient::~HttpKubeClient() = default;

Result<Json> HttpKubeClient::Do(const std::string& method, const std::string& path_query,
                                const Json* body, const std::string& content_type) {
  int code = 0;
  auto result = DoOnce(method, path_query, body, content_type, &code);
  if (!result && code == 401) {  // rotated or expired token: one fresh try
    tokens_->Invalidate();
    result = DoOnce(method, path_query, body, content_type, &code);
  }
  return result;
}

Result<Json> HttpKubeClient::DoOnce(const std::string& method, const std::string& path_query,
                                    const Json* body, const std::string& content_type,
                                    int* http_code) {
  std::string context = method + " " + path_query;
  (method == "GET" ? counters_.reads : counters_.writes).fetch_add(1, std::memory_order_relaxed);
  MS_ASSIGN_OR_RETURN(std::string token, tokens_->Token());
  try {
    http::http_request req(method);
    req.set_request_uri(path_query);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", opts_.user_agent);
    if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
    if (body != nullptr) req.set_body(body->dump(), content_type);
    http::http_response resp = http_->request(req).get();
    std::string text = resp.extract_string(true).get();
    *http_code = resp.status_code();
    if (resp.status_code() < 200 || resp.status_code() >= 300) {
      counters_.errors.fetch_add(1, std::memory_order_relaxed);
      return Fail(ApiError(context, resp.status_code(), text, RetryAfterHeader(resp.headers())));
    }
    Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      return Fail(Code::kUnavailable, context + ": response is not JSON: " + text.substr(0, 120));
    }
    return doc;
  } catch (const std::exception& e) {
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    return Fail(Code::kUnavailable, context + ": " + e.what());
  }
}

Result<Json> HttpKubeClient::Get(const ResourceRef& r, const std::string& ns,
                                 const std::string& name) {
  return Do("GET", r.Path(ns, name), nullptr, "");
}

Result<Json> HttpKubeClient::List(const ResourceRef& r, const std::string& ns,
                                  const ListOptions& opts) {
  return Do("GET", r.Path(ns) + ListQuery(opts), nullptr, "");
}

Result<Json> HttpKubeClient::Create(const ResourceRef& r, const std::string& ns, const Json& obj,
                                    bool dry_run) {
  return Do("POST", r.Path(ns) + (dry_run ? "?dryRun=All" : ""), &obj, "application/json");
}

Result<Json> HttpKubeClient::Update(const ResourceRef& r, const std::string& ns, const Json& obj,
                                    bool status_subresource) {
  return Do("PUT", r.Path(ns, NameOf(obj), status_subresource), &obj, "application/json");
}

Result<Json> HttpKubeClient::Patch(const ResourceRef& r, const std::string& ns,
                                   const std::string& name, PatchType type, const Json& patch,
                                   bool status_subresource) {
  const char* ct =
      type == PatchType::kMerge ? "application/merge-patch+json" : "application/json-patch+json";
  return Do("PATCH", r.Path(ns, name, status_subresource), &patch, ct);
}

Result<Json> HttpKubeClient::Delete(const ResourceRef& r, const std::string& ns,
                                    const std::string& name,
                                    const std::string& propagation_policy) {
  std::string q;
  AddParam(&q, "propagationPolicy", propagation_policy);
  return Do("DELETE", r.Path(ns, name) + q, nullptr, "");
}

Status HttpKubeClient::Watch(const ResourceRef& r, const std::string& ns, const WatchOptions& opts,
                             const WatchHandler& on_event, Cancellation* cancel) {
  std::string path = r.Path(ns) + WatchQuery(opts);
  int code = 0;
  auto st = WatchOnce(path, opts.timeout_seconds, on_event, cancel, &code);
  if (!st && code == 401) {
    tokens_->Invalidate();
    st = WatchOnce(path, opts.timeout_seconds, on_event, cancel, &code);
  }
  return st;
}

Status HttpKubeClient::WatchOnce(const std::string& path_query, int timeout_seconds,
                                 const WatchHandler& on_event, Cancellation* cancel,
                                 int* http_code) {
  std::string context = "WATCH " + path_query;
  counters_.watches.fetch_add(1, std::memory_order_relaxed);
  MS_ASSIGN_OR_RETURN(std::string token, tokens_->Token());
  pplx::cancellation_token_source cts;
  int reg = cancel != nullptr ? cancel->OnCancel([cts]() { cts.cancel(); }) : -1;
  struct Unregister {
    Cancellation* c;
    int id;
    ~Unregister() {
      if (c != nullptr && id >= 0) c->Unregister(id);
    }
  } unregister{cancel, reg};
  try {
    // The server ends a watch after timeout_seconds; the idle timeout is a backstop for a
    // connection that went silent without closing.
    client::http_client watch_http(cfg_.server,
                                   MakeConfig(cfg_, std::chrono::seconds(timeout_seconds + 30)));
    http::http_request req("GET");
    req.set_request_uri(path_query);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", opts_.user_agent);
    if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
    http::http_response resp = watch_http.request(req, cts.get_token()).get();
    *http_code = resp.status_code();
    if (resp.status_code() != 200) {
      counters_.errors.fetch_add(1, std::memory_order_relaxed);
      std::string text = resp.extract_string(true).get();
      return Fail(ApiError(context, resp.status_code(), text, RetryAfterHeader(resp.headers())));
    }
    auto body = resp.body();
    WatchDecoder decoder;
    std::optional<Error> event_error;
    WatchHandler handler = [&](WatchEvent&& ev) {
      if (ev.type == EventType::kError) {
        event_error = WatchErrorToError(ev.object);
        return false;
      }
      return on_event(std::move(ev));
    };
    for (;;) {
      concurrency::streams::container_buffer<std::string> line;
      size_t n = body.read_line(line).get();
      if (n == 0 && body.is_eof()) break;
      line.collection().push_back('\n');
      auto more = decoder.Feed(line.collection(), handler);
      if (!more) return Fail(more.error().Context(context));
      if (event_error) return Fail(*event_error);
      if (!*more) return Ok();
    }
    return Ok();
  } catch (const std::exception& e) {
    if (cancel != nullptr && cancel->cancelled()) {
      return Fail(Code::kAborted, context + ": cancelled");
    }
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    return Fail(Code::kUnavailable, context + ": stream broken: " + e.what());
  }
}

}  // namespace modelswap::op
