// The HTTP(S) server on Boost.Beast; see http_server.h for what it does and why not cpprestsdk.
//
// One Session per connection, templated on its stream (TCP, or TLS over TCP), runs on its own
// strand:
//   [TLS handshake] -> read header -> decide from the header alone (route, method, declared
//   length) -> [read body] -> handler -> write reply -> next header (keep-alive) or close.
// Each wait on the peer runs under a deadline on the lowest layer (beast::tcp_stream): when it
// passes, the stream closes the socket and the pending operation fails with error::timeout. A
// session lives as long as an operation of its own is pending (shared_from_this in each
// handler); when none is left, the last reference closes the socket.
#include "common/http_server.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

namespace modelswap {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// The running server: options and routes (read-only once started), the TLS context cache, the
// I/O context, its threads and the acceptor. Sessions refer to it; they are all destroyed with
// `ioc` in Stop, before it.
struct HttpServer::Impl {
  HttpServerOptions opts;
  std::map<std::string, HttpRoute, std::less<>> routes;
  std::mutex tls_mu;
  TlsPem tls_pem;                         // guarded by tls_mu: what tls_ctx was built from
  std::shared_ptr<ssl::context> tls_ctx;  // guarded by tls_mu
  std::unique_ptr<asio::io_context> ioc;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> accept_retry;
  std::vector<std::thread> threads;
};

namespace {

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr const char* kText = "text/plain; charset=utf-8";
constexpr size_t kHeaderLimit = 16 << 10;
// After a reply that closes the connection, request bytes still in flight are read and dropped
// for at most this long (and this many): closing with unread data makes the kernel send a reset,
// which can destroy the reply before the peer reads it (Go's net/http closeWriteAndWait does the
// same).
constexpr auto kLingerTime = std::chrono::milliseconds(500);
constexpr size_t kLingerBytes = 256 << 10;

// Beast 1.74 spells its views boost::string_view.
std::string_view View(beast::string_view s) {
  return {s.data(), s.size()};
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A malformed request (as opposed to a connection that ended or timed out).
bool IsParseError(const beast::error_code& ec) {
  return ec.category() == beast::error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(const HttpServer::Impl& server, Stream stream, std::shared_ptr<ssl::context> tls)
      : server_(server), opts_(server.opts), stream_(std::move(stream)), tls_(std::move(tls)) {}

  void Start() {
    if constexpr (kTls) {
      Tcp().expires_after(opts_.header_timeout);
      stream_.async_handshake(ssl::stream_base::server, Bind(&Session::OnHandshake));
    } else {
      ReadHeader();
    }
  }

 private:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  enum class After { kKeepAlive, kClose };

  template <class F, class... Args>
  auto Bind(F f, Args... args) {
    return beast::bind_front_handler(f, this->shared_from_this(), args...);
  }
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  // The connection ends when this returns without starting another operation.
  void Ended(const char* step, const beast::error_code& ec) {
    spdlog::debug("{} connection ended step={} err=\"{}\"", opts_.name, step, ec.message());
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) return Ended("tls handshake", ec);
    ReadHeader();
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    // The declared length is checked against the cap in OnHeader, which answers 413 itself;
    // left at Beast's default, the header read would fail instead. Not boost::none: Beast 1.74
    // compares the length with the optional, and every length is greater than none.
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    refused_.reset();
    allow_.clear();
    Tcp().expires_after(opts_.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_, Bind(&Session::OnHeader));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (ec == http::error::header_limit) {
      return Reply({431, kText, "request header too large\n"}, After::kClose);
    }
    if (IsParseError(ec)) return Reply({400, kText, "malformed request\n"}, After::kClose);
    if (ec) return Ended("read header", ec);

    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    std::string_view target = View(req.target());
    std::string_view path = target.substr(0, target.find('?'));
    // Transfer-Encoding frames the body without declaring its length up front.
    const bool undeclared = req.count(http::field::transfer_encoding) > 0;
    const uint64_t declared = parser_->content_length().value_or(0);
    const bool too_large = declared > opts_.max_body_bytes;
    const bool expects_continue = beast::iequals(req[http::field::expect], "100-continue");

    auto it = server_.routes.find(path);
    if (it == server_.routes.end()) {
      refused_ = HttpReply{404, kText, "not found\n"};
    } else if (std::find(it->second.methods.begin(), it->second.methods.end(),
                         View(req.method_string())) == it->second.methods.end()) {
      refused_ = HttpReply{405, kText, "method not allowed\n"};
      for (const auto& m : it->second.methods)
        allow_ += (allow_.empty() ? "" : ", ") + m;
    }
    if (refused_) {
      // Skip a small declared body to keep the connection; anything else ends it.
      if (declared == 0 && !undeclared) return Reply(std::move(*refused_), KeepAlive());
      if (undeclared || too_large || expects_continue) {
        return Reply(std::move(*refused_), After::kClose);
      }
      return ReadBody();
    }
    route_ = &it->second;
    if (undeclared || (route_->body == HttpBody::kRequired && !parser_->content_length())) {
      return Reply({411, kText, "Content-Length required\n"}, After::kClose);
    }
    if (too_large) return Reply({413, kText, "request body too large\n"}, After::kClose);
    if (declared == 0) return Dispatch();
    if (expects_continue) {
      // Tell a client that waits for it (curl does above 1 KiB) to send the body now.
      continue_ = http::response<http::empty_body>(http::status::continue_, 11);
      Tcp().expires_after(opts_.write_timeout);
      return http::async_write(stream_, continue_, Bind(&Session::OnContinueWritten));
    }
    ReadBody();
  }

  void OnContinueWritten(beast::error_code ec, size_t) {
    if (ec) return Ended("write 100-continue", ec);
    ReadBody();
  }

  void ReadBody() {
    parser_->body_limit(opts_.max_body_bytes);
    Tcp().expires_after(opts_.body_timeout);
    http::async_read(stream_, buffer_, *parser_, Bind(&Session::OnBody));
  }

  void OnBody(beast::error_code ec, size_t) {
    if (ec == beast::error::timeout) {
      spdlog::info("{} request body not received in time, connection closed path={} timeout_ms={}",
                   opts_.name, View(parser_->get().target()), opts_.body_timeout.count());
      return;
    }
    if (ec) return Ended("read body", ec);
    if (refused_) return Reply(std::move(*refused_), KeepAlive());
    Dispatch();
  }

  void Dispatch() {
    auto req = parser_->release();
    HttpRequest r;
    r.method = std::string(View(req.method_string()));
    std::string_view target = View(req.target());
    auto q = target.find('?');
    r.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
    for (const auto& f : req) {
      auto [at, fresh] = r.headers.try_emplace(Lower(View(f.name_string())), View(f.value()));
      if (!fresh) at->second.append(", ").append(View(f.value()));
    }
    r.body = std::move(req.body());
    HttpReply reply;
    try {
      reply = route_->handler(r);
    } catch (const std::exception& e) {
      spdlog::error("{} handler failed path={} err=\"{}\"", opts_.name, r.path, e.what());
      reply = {500, kText, "internal error\n"};
    } catch (...) {
      spdlog::error("{} handler failed path={} err=\"unknown exception\"", opts_.name, r.path);
      reply = {500, kText, "internal error\n"};
    }
    Reply(std::move(reply), KeepAlive());
  }

  After KeepAlive() const { return keep_alive_ ? After::kKeepAlive : After::kClose; }

  void Reply(HttpReply r, After after) {
    res_ = {};
    res_.version(11);
    // Beast throws on a status outside 100..999; a handler returning one is a bug.
    res_.result(r.code >= 100 && r.code <= 999 ? static_cast<unsigned>(r.code) : 500u);
    res_.set(http::field::content_type, r.content_type);
    if (!allow_.empty()) res_.set(http::field::allow, allow_);
    res_.body() = std::move(r.body);
    res_.keep_alive(after == After::kKeepAlive);
    res_.prepare_payload();
    Tcp().expires_after(opts_.write_timeout);
    http::async_write(stream_, res_, Bind(&Session::OnWritten, after));
  }

  void OnWritten(After after, beast::error_code ec, size_t) {
    if (ec) return Ended("write", ec);
    if (after == After::kKeepAlive) return ReadHeader();
    Tcp().expires_after(kLingerTime);
    if constexpr (kTls) {
      // Sends close_notify and waits (until the deadline) for the peer's.
      stream_.async_shutdown(Bind(&Session::Ended, "close"));
    } else {
      beast::error_code ignored;
      Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
      Drain();
    }
  }

  void Drain() {
    buffer_.clear();
    Tcp().async_read_some(buffer_.prepare(4096), Bind(&Session::OnDrained));
  }

  void OnDrained(beast::error_code ec, size_t n) {
    drained_ += n;
    if (ec || drained_ >= kLingerBytes) return Ended("close", ec);
    Drain();
  }

  const HttpServer::Impl& server_;
  const HttpServerOptions& opts_;
  Stream stream_;
  std::shared_ptr<ssl::context> tls_;  // keeps the context the stream was made from
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::empty_body> continue_;
  http::response<http::string_body> res_;
  const HttpRoute* route_ = nullptr;
  std::optional<HttpReply> refused_;  // 404/405 to send once a small body has been skipped
  std::string allow_;                 // the Allow field of a 405
  bool keep_alive_ = false;
  size_t drained_ = 0;
};

// The SSL context for a new connection: rebuilt only when the callback's PEMs change, so a
// rotation takes effect on the next connection and an unchanged certificate is parsed once.
Result<std::shared_ptr<ssl::context>> TlsContext(HttpServer::Impl& s) {
  Result<TlsPem> pem = Fail(Code::kInternal, "tls callback threw");
  try {
    pem = s.opts.tls();
  } catch (const std::exception& e) {
    return Fail(Code::kInternal, std::string("tls callback threw: ") + e.what());
  }
  if (!pem) return Fail(pem.error());
  if (pem->cert_chain.empty() || pem->key.empty()) {
    return Fail(Code::kFailedPrecondition, "no certificate loaded");
  }
  std::lock_guard lock(s.tls_mu);
  if (s.tls_ctx && s.tls_pem == *pem) return s.tls_ctx;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  beast::error_code ec;
  ctx->use_certificate_chain(asio::buffer(pem->cert_chain), ec);
  if (ec)
    return Fail(Code::kInvalidArgument, "tls certificate chain does not load: " + ec.message());
  ctx->use_private_key(asio::buffer(pem->key), ssl::context::pem, ec);
  if (ec) return Fail(Code::kInvalidArgument, "tls private key does not load: " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return Fail(Code::kInvalidArgument, "tls private key does not match the certificate");
  }
  s.tls_pem = std::move(*pem);
  s.tls_ctx = ctx;
  return ctx;
}

void StartSession(HttpServer::Impl& s, tcp::socket socket) {
  // A TLS handshake's flight goes out in several writes: with Nagle, each waits for the peer's
  // delayed ACK (40 ms on Linux).
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  beast::tcp_stream stream(std::move(socket));
  if (!s.opts.tls) {
    std::make_shared<Session<beast::tcp_stream>>(s, std::move(stream), nullptr)->Start();
    return;
  }
  auto ctx = TlsContext(s);
  if (!ctx) {  // the stream goes out of scope: the peer sees its handshake fail
    spdlog::error("{} tls: refusing the handshake err=\"{}\"", s.opts.name, ctx.error().message());
    return;
  }
  TlsStream tls(std::move(stream), **ctx);
  std::make_shared<Session<TlsStream>>(s, std::move(tls), *ctx)->Start();
}

void Accept(HttpServer::Impl& s) {
  s.acceptor->async_accept(
      asio::make_strand(*s.ioc), [&s](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) return;
        if (ec) {
          // Out of descriptors and the like: try again shortly instead of spinning on it.
          spdlog::warn("{} accept failed err=\"{}\"", s.opts.name, ec.message());
          s.accept_retry->expires_after(std::chrono::milliseconds(100));
          s.accept_retry->async_wait([&s](beast::error_code e) {
            if (!e) Accept(s);
          });
          return;
        }
        StartSession(s, std::move(socket));
        Accept(s);
      });
}

Status Listen(tcp::acceptor& a, const tcp::endpoint& ep) {
  beast::error_code ec;
  a.open(ep.protocol(), ec);
  // "[::]" and ":port" take IPv4 too (mapped addresses), whatever net.ipv6.bindv6only says.
  if (!ec && ep.address().is_v6() && ep.address().is_unspecified()) {
    a.set_option(asio::ip::v6_only(false), ec);
  }
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    a.close(ignored);
    return Fail(
        ec == asio::error::address_family_not_supported ? Code::kNotSupported : Code::kUnavailable,
        ec.message());
  }
  return Ok();
}

Result<tcp::endpoint> Endpoint(asio::io_context& ioc, const std::string& host, int port) {
  auto p = static_cast<uint16_t>(port);
  if (host.empty()) return tcp::endpoint(asio::ip::address_v6::any(), p);
  beast::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(address, p);
  tcp::resolver resolver(ioc);
  auto found = resolver.resolve(host, std::to_string(port), ec);
  if (ec || found.empty()) {
    return Fail(Code::kInvalidArgument, "host \"" + host + "\" does not resolve: " + ec.message());
  }
  return found.begin()->endpoint();
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() <= 5 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string HttpRequest::Header(std::string_view lowercase_name) const {
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? "" : it->second;
}

Result<std::pair<std::string, int>> ParseListenAddress(const std::string& addr) {
  std::string host, port;
  if (addr.starts_with('[')) {
    auto close = addr.find(']');
    if (close == std::string::npos || close == 1 || addr.compare(close + 1, 1, ":") != 0) {
      return Fail(Code::kInvalidArgument, "listen address \"" + addr + "\" is not [host]:port");
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) {
      return Fail(Code::kInvalidArgument, "listen address \"" + addr + "\" is not host:port");
    }
    host = addr.substr(0, colon);
    if (host.find(':') != std::string::npos) {
      return Fail(Code::kInvalidArgument,
                  "listen address \"" + addr + "\": an IPv6 host goes in brackets, as [::1]:8080");
    }
    port = addr.substr(colon + 1);
  }
  if (!AllDigits(port) || std::stoi(port) > 65535) {
    return Fail(Code::kInvalidArgument, "listen address \"" + addr + "\" has a bad port");
  }
  return std::make_pair(host, std::stoi(port));
}

HttpServer::HttpServer(HttpServerOptions opts) : opts_(std::move(opts)) {}

HttpServer::~HttpServer() {
  Stop();
}

void HttpServer::Route(const std::string& path, std::vector<std::string> methods,
                       HttpHandler handler, HttpBody body) {
  routes_[path] = HttpRoute{std::move(methods), std::move(handler), body};
}

Status HttpServer::Start() {
  const std::string& name = opts_.name;
  if (impl_) return Fail(Code::kFailedPrecondition, name + " server already started");
  if (opts_.threads < 1 || opts_.header_timeout.count() <= 0 || opts_.body_timeout.count() <= 0 ||
      opts_.write_timeout.count() <= 0) {
    return Fail(Code::kInvalidArgument, name + " server: threads and timeouts must be positive");
  }
  auto hp = ParseListenAddress(opts_.addr);
  if (!hp) return Fail(hp.error().Context(name + " server"));
  auto impl = std::make_unique<Impl>();
  impl->opts = opts_;
  impl->routes = routes_;
  impl->ioc = std::make_unique<asio::io_context>(opts_.threads);
  impl->acceptor.emplace(asio::make_strand(*impl->ioc));
  auto ep = Endpoint(*impl->ioc, hp->first, hp->second);
  if (!ep) return Fail(ep.error().Context(name + " listen on " + opts_.addr));
  Status st = Listen(*impl->acceptor, *ep);
  if (!st && st.error().code() == Code::kNotSupported && hp->first.empty()) {
    // ":port" on a kernel without IPv6: every IPv4 interface.
    st = Listen(*impl->acceptor, tcp::endpoint(asio::ip::address_v4::any(), ep->port()));
  }
  if (!st)
    return Fail(Code::kUnavailable,
                name + " listen on " + opts_.addr + ": " + st.error().message());

  tcp::endpoint bound = impl->acceptor->local_endpoint();
  port_ = bound.port();
  bound_ = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                   : bound.address().to_string();
  bound_ += ":" + std::to_string(port_);
  impl->accept_retry.emplace(impl->acceptor->get_executor());
  Accept(*impl);
  for (int i = 0; i < opts_.threads; ++i) {
    impl->threads.emplace_back([ioc = impl->ioc.get(), name] {
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (const std::exception& e) {  // a bug: keep serving the other connections
          spdlog::error("{} server thread caught err=\"{}\"", name, e.what());
        }
      }
    });
  }
  impl_ = std::move(impl);
  spdlog::debug("{} server started addr={} tls={}", name, bound_, static_cast<bool>(opts_.tls));
  return Ok();
}

void HttpServer::Stop() {
  if (!impl_) return;
  impl_->ioc->stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->accept_retry.reset();
  impl_->acceptor.reset();
  impl_->ioc.reset();  // destroys the sessions still waiting on their peers, closing them
  impl_.reset();
}

}  // namespace modelswap
