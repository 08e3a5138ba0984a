// One GET /v1/status over Boost.Beast; see probe_client.h.
//
// A call is a chain of completion handlers on the caller's io_context: [resolve] -> connect ->
// write -> read -> done. The beast::tcp_stream's deadline, set once before connecting, covers the
// whole chain: when it passes the stream closes the socket and the pending step fails with
// beast::error::timeout. The call object lives as long as one of its steps is pending
// (shared_from_this in each handler).
#include "operator/controller/probe_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>

namespace modelswap::op {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Result<ProbeTarget> ParseAgentBaseUrl(const std::string& base_url) {
  const std::string scheme = "http://";
  if (base_url.rfind(scheme, 0) != 0) {
    return Fail(Code::kInvalidArgument, "agent url " + base_url + ": not http://host:port");
  }
  std::string rest = base_url.substr(scheme.size());
  rest = rest.substr(0, rest.find('/'));
  ProbeTarget t;
  size_t colon;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return Fail(Code::kInvalidArgument, "agent url " + base_url + ": bad [v6]:port");
    }
    t.host = rest.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string::npos) colon = rest.size();
    t.host = rest.substr(0, colon);
  }
  std::string port = colon < rest.size() ? rest.substr(colon + 1) : "80";
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (t.host.empty() || port.empty() || *end != '\0' || p <= 0 || p > 65535) {
    return Fail(Code::kInvalidArgument, "agent url " + base_url + ": bad host or port");
  }
  t.port = static_cast<int>(p);
  return t;
}

namespace {

class StatusCall : public std::enable_shared_from_this<StatusCall> {
 public:
  StatusCall(asio::io_context& ioc, ProbeTarget t, size_t max_body, ProbeCallback done)
      : resolver_(ioc), stream_(ioc), target_(std::move(t)), done_(std::move(done)) {
    parser_.body_limit(max_body);
    req_.method(http::verb::get);
    req_.target("/v1/status");
    req_.version(11);
    req_.set(http::field::host, target_.host);
    req_.set(http::field::connection, "close");
    req_.set(http::field::user_agent, "modelswap-operator");
  }

  void Start(std::chrono::milliseconds timeout) {
    stream_.expires_after(timeout);
    beast::error_code ec;
    auto ip = asio::ip::make_address(target_.host, ec);
    if (!ec) {
      stream_.async_connect(tcp::endpoint(ip, static_cast<uint16_t>(target_.port)),
                            [self = shared_from_this()](beast::error_code e) { self->Sent(e); });
      return;
    }
    // The resolver has no deadline of its own: the stream's timer closes the socket, not the
    // lookup, so a stalled lookup is bounded by the system resolver's own timeouts. Only
    // standalone mode's --agent-url can name a host; pod IPs never need this.
    resolver_.async_resolve(
        target_.host, std::to_string(target_.port),
        [self = shared_from_this()](beast::error_code e, tcp::resolver::results_type r) {
          if (e) return self->Finish(e, "resolve");
          self->stream_.async_connect(
              r, [self](beast::error_code e2, const tcp::endpoint&) { self->Sent(e2); });
        });
  }

 private:
  void Sent(beast::error_code ec) {
    if (ec) return Finish(ec, "connect");
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code e, size_t) {
      if (e) return self->Finish(e, "write");
      self->Read();
    });
  }

  void Read() {
    http::async_read(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code e, size_t) { self->Finish(e, "read"); });
  }

  void Finish(beast::error_code ec, const char* step) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    std::string where = target_.host + ":" + std::to_string(target_.port);
    if (ec == http::error::body_limit) {
      return done_(Fail(Code::kUnavailable, "agent " + where + ": body over the limit"));
    }
    if (ec == beast::error::timeout) {
      return done_(Fail(Code::kUnavailable, "agent " + where + ": timed out (" + step + ")"));
    }
    if (ec)
      return done_(Fail(Code::kUnavailable, "agent " + where + ": " + step + ": " + ec.message()));
    auto res = parser_.release();
    if (res.result_int() != 200) {
      return done_(Fail(Code::kUnavailable,
                        "agent " + where + ": HTTP " + std::to_string(res.result_int())));
    }
    done_(std::move(res.body()));
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  ProbeTarget target_;
  ProbeCallback done_;
  beast::flat_buffer buffer_;
  http::request<http::empty_body> req_;
  http::response_parser<http::string_body> parser_;
};

}  // namespace

void GetAgentStatus(asio::io_context& ioc, const ProbeTarget& t, std::chrono::milliseconds timeout,
                    size_t max_body_bytes, ProbeCallback done) {
  std::make_shared<StatusCall>(ioc, t, max_body_bytes, std::move(done))->Start(timeout);
}

}  // namespace modelswap::op
