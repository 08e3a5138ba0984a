// HttpKubeClient: KubeClient over HTTPS (or HTTP for the tests' fake server) with cpprestsdk.
//
// TLS: the cluster CA from the config (else the system roots), client certificate and key from
// memory, insecure-skip-tls-verify honoured. Certificates are checked when the client is built,
// so a bad PEM is a clear error at start, not a failed handshake later. Bearer tokens come from
// a TokenSource per request; a 401 invalidates it and retries the request once (rotated or
// expired tokens). Bodies may come with Content-Length or chunked (cpprestsdk decodes both).
// Watches use their own connection with an idle timeout of timeoutSeconds plus a margin, and are
// aborted through a Cancellation.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/env.h"
#include "operator/kube/client.h"
#include "operator/kube/credentials.h"
#include "operator/kube/kubeconfig.h"

namespace web::http::client {
class http_client;
}

namespace modelswap::op {

struct HttpClientOptions {
  std::chrono::seconds request_timeout{30};
  std::string user_agent = "modelswap-operator/0.1";
};

// Requests made, by kind (for /metrics and the steady-state benchmark).
struct RequestCounters {
  std::atomic<uint64_t> reads{0};    // GET/LIST: relaxed, monotonic counters read for display only
  std::atomic<uint64_t> writes{0};   // POST/PUT/PATCH/DELETE
  std::atomic<uint64_t> watches{0};  // watch streams opened
  std::atomic<uint64_t> errors{0};   // non-2xx answers and transport failures
};

class HttpKubeClient final : public KubeClient {
 public:
  static Result<std::unique_ptr<HttpKubeClient>> Create(Env* env, const ClusterConfig& cfg,
                                                        HttpClientOptions opts = {});
  ~HttpKubeClient() override;

  Result<Json> Get(const ResourceRef& r, const std::string& ns, const std::string& name) override;
  Result<Json> List(const ResourceRef& r, const std::string& ns, const ListOptions& opts) override;
  Result<Json> Create(const ResourceRef& r, const std::string& ns, const Json& obj,
                      bool dry_run = false) override;
  Result<Json> Update(const ResourceRef& r, const std::string& ns, const Json& obj,
                      bool status_subresource = false) override;
  Result<Json> Patch(const ResourceRef& r, const std::string& ns, const std::string& name,
                     PatchType type, const Json& patch, bool status_subresource = false) override;
  Result<Json> Delete(const ResourceRef& r, const std::string& ns, const std::string& name,
                      const std::string& propagation_policy = "") override;
  Status Watch(const ResourceRef& r, const std::string& ns, const WatchOptions& opts,
               const WatchHandler& on_event, Cancellation* cancel) override;

  const RequestCounters& counters() const { return counters_; }
  const ClusterConfig& config() const { return cfg_; }

 private:
  HttpKubeClient(Env* env, ClusterConfig cfg, HttpClientOptions opts,
                 std::unique_ptr<TokenSource> tokens);
  Result<Json> Do(const std::string& method, const std::string& path_query, const Json* body,
                  const std::string& content_type);
  Result<Json> DoOnce(const std::string& method, const std::string& path_query, const Json* body,
                      const std::string& content_type, int* http_code);
  Status WatchOnce(const std::string& path_query, int timeout_seconds, const WatchHandler& on_event,
                   Cancellation* cancel, int* http_code);

  Env* env_;
  ClusterConfig cfg_;
  HttpClientOptions opts_;
  std::unique_ptr<TokenSource> tokens_;
  std::unique_ptr<web::http::client::http_client> http_;
  RequestCounters counters_;
};

// "?a=b&c=d" from ListOptions / WatchOptions (values percent-encoded).
std::string ListQuery(const ListOptions& opts);
std::string WatchQuery(const WatchOptions& opts);

}  // namespace modelswap::op
