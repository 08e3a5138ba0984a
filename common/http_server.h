// HttpServer: a small HTTP endpoint (cpprestsdk http_listener) with exact-path routes, used for
// /healthz, /readyz and /metrics. It is the seam the admission webhook (issue 5) plugs into:
// the webhook adds its own HTTPS listener with a certificate; handlers stay functions from
// request body to response.
//
// Thread safety: Route before Start; handlers run on cpprestsdk's thread pool and must be
// thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace web::http::experimental::listener {
class http_listener;
}

namespace modelswap {

struct HttpReply {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpReply(const std::string& method, const std::string& body)>;
  // addr: "host:port" or ":port" (all interfaces); port 0 picks a free one.
  explicit HttpServer(std::string addr);
  ~HttpServer();

  void Route(const std::string& path, Handler h);
  Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  std::string addr_;
  int port_ = 0;
  std::map<std::string, Handler> routes_;
  std::unique_ptr<web::http::experimental::listener::http_listener> listener_;
};

// "host:port" / ":port" -> (host, port); kInvalidArgument otherwise.
Result<std::pair<std::string, int>> ParseListenAddress(const std::string& addr);

}  // namespace modelswap
