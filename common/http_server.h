// HttpServer: the one small HTTP(S) server both binaries use (the operator's /healthz, /readyz and
// /metrics, the admission webhook, the agent's status endpoints), on Boost.Beast over Boost.Asio
// with its own I/O threads. Users add routes and handlers; this file owns the sockets.
//
// Why not cpprestsdk's http_listener, which the three servers used before: its Linux listener
// (Release/src/http/listener/http_server_asio.cpp in cpprestsdk 2.10.18)
//   - splits "host:port" at the first ':', so no IPv6 address can be bound ("resolve: Service not
//     found" for http://[::1]:port), and cannot report the port it bound for port 0;
//   - has no deadline on reading a request (http_listener_config::timeout is not used there): a
//     client that declares a Content-Length and stalls holds its connection until it gives up;
//   - writes a response only once the whole declared body has arrived (do_response waits on
//     content_ready), so a 413 cannot be answered before the body is read;
//   - runs handlers on the process-wide cpprestsdk pool that the operator's API client also uses,
//     where a handler waiting for its body (extract_string().get()) holds a pool thread.
//
// What this server does:
//   - routes by exact path (the query is ignored) with the methods each route allows: 404, 405
//     (with Allow);
//   - a body cap: a declared Content-Length over max_body_bytes is answered 413 as soon as the
//     header is in, and the body is never read; a body framed without a declared length
//     (Transfer-Encoding) gets 411, and so does a request without Content-Length on a route
//     whose body is required; both close the connection;
//   - deadlines: the TLS handshake and each request header (which includes a kept-alive
//     connection's wait for its next request) within header_timeout, each body within
//     body_timeout, each response within write_timeout; past one, the connection is closed;
//   - bodies are read asynchronously: a stalled client holds a socket and its buffer, never a
//     thread; a handler runs on one of the server's threads once its whole body is in;
//   - a handler is a function from HttpRequest to HttpReply; an exception it throws is a 500;
//   - HTTPS when `tls` is set: it is asked for the PEM certificate chain and key on every new
//     connection, so a rotated certificate is served from the next connection on while kept-alive
//     connections finish on theirs; TLS 1.2 and later only;
//   - addresses: "host:port"; ":port" (every interface: IPv6 and IPv4 on one dual-stack socket,
//     IPv4 alone where the kernel has no IPv6); "0.0.0.0:port" (IPv4 only); "[::]:port"
//     (dual-stack); "[::1]:port"; port 0 binds a free port and port() reports it.
//
// Thread safety: Route before Start; Start and Stop from one thread, never from a handler.
// Handlers run concurrently on the server's threads and must be thread-safe; Stop returns after
// the running ones have returned, so state they use may be destroyed after Stop.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace modelswap {

struct HttpRequest {
  std::string method;  // as sent: "GET", "POST"
  std::string path;    // the request target up to '?'
  std::string query;   // after '?'; "" when none
  // Field names in lowercase; a repeated field's values joined with ", ".
  std::map<std::string, std::string, std::less<>> headers;
  std::string body;

  // The value of a field (name in lowercase), "" when absent.
  std::string Header(std::string_view lowercase_name) const;
};

struct HttpReply {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// What an HTTPS server serves on one connection.
struct TlsPem {
  std::string cert_chain;  // the serving certificate, then intermediates
  std::string key;         // its private key
  bool operator==(const TlsPem&) const = default;
};

struct HttpServerOptions {
  std::string addr;           // see the header comment; port 0 picks a free one
  std::string name = "http";  // names the server in logs and errors
  // HTTPS when set. Called for each new connection; an error refuses that connection's
  // handshake (the error is logged).
  std::function<Result<TlsPem>()> tls = nullptr;
  size_t max_body_bytes = 64 << 10;
  std::chrono::milliseconds header_timeout{60'000};
  std::chrono::milliseconds body_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
  int threads = 2;  // run the I/O and the handlers; a peer that is slow to send never holds one
};

// Whether a route needs a body: a request to a kRequired route without Content-Length gets 411.
enum class HttpBody { kOptional, kRequired };

using HttpHandler = std::function<HttpReply(const HttpRequest&)>;

struct HttpRoute {
  std::vector<std::string> methods;  // the ones the path answers; others get 405
  HttpHandler handler;
  HttpBody body = HttpBody::kOptional;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions opts);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // `methods`: the ones this path answers ("GET", "POST"); others get 405.
  void Route(const std::string& path, std::vector<std::string> methods, HttpHandler handler,
             HttpBody body = HttpBody::kOptional);
  // Binds and starts serving. kInvalidArgument for a bad address or options, kUnavailable when
  // the address cannot be bound.
  [[nodiscard]] Status Start();
  // Closes the listener and every connection; waits for running handlers. Idempotent.
  void Stop();
  // The bound port (after Start).
  int port() const { return port_; }
  // The bound address as "127.0.0.1:8080" or "[::1]:8080" (after Start).
  std::string BoundAddress() const { return bound_; }

  struct Impl;

 private:
  HttpServerOptions opts_;
  std::map<std::string, HttpRoute, std::less<>> routes_;
  int port_ = 0;
  std::string bound_;
  std::unique_ptr<Impl> impl_;
};

// "host:port", ":port", "[v6]:port" -> (host without brackets, "" for every interface; port).
// kInvalidArgument otherwise, naming what is wrong.
[[nodiscard]] Result<std::pair<std::string, int>> ParseListenAddress(const std::string& addr);

}  // namespace modelswap
