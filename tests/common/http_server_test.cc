// HttpServer (common/http_server.h) over loopback with raw sockets, so each test controls exactly
// which bytes the server sees: routes, 404/405, a declared length over the cap answered 413
// before any body is sent, 411, a body that stalls half-way cut off by the body deadline, many
// stalled clients not stopping a fast one, a throwing handler's 500, IPv6 and dual-stack binds,
// port 0, and the address parser.
//
// Every socket has a receive timeout as a safety net only: a server that never answers fails the
// test instead of hanging it. No test depends on how long anything takes.
#include "common/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

namespace modelswap {
namespace {

// Connects to a numeric IPv4 or IPv6 host; -1 when that fails.
int Connect(const std::string& host, int port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v6);
  } else {
    return -1;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM, 0);
  timeval safety{.tv_sec = 30, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &safety, sizeof(safety));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct Response {
  int status = 0;  // 0: the connection ended (or the safety timeout hit) before a status line
  std::string head;
  std::string body;
};

// Reads one response framed by Content-Length (what the server always sends).
Response ReadResponse(int fd, std::string& buf) {
  Response r;
  char chunk[4096];
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return r;
    buf.append(chunk, static_cast<size_t>(n));
  }
  r.head = buf.substr(0, end);
  r.status = std::stoi(r.head.substr(9, 3));
  size_t length = 0;
  if (auto at = r.head.find("Content-Length: "); at != std::string::npos) {
    length = std::stoul(r.head.substr(at + 16));
  }
  while (buf.size() < end + 4 + length) {
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return Response{};
    buf.append(chunk, static_cast<size_t>(n));
  }
  r.body = buf.substr(end + 4, length);
  buf.erase(0, end + 4 + length);
  return r;
}

// True when the peer closed the connection (rather than sending anything).
bool PeerClosed(int fd) {
  char c;
  return ::recv(fd, &c, 1, 0) == 0;
}

struct Conn {
  explicit Conn(int port, const std::string& host = "127.0.0.1") : fd(Connect(host, port)) {}
  ~Conn() {
    if (fd >= 0) ::close(fd);
  }
  Response Send(std::string_view raw) {
    if (!SendAll(fd, raw)) return {};
    return ReadResponse(fd, buf);
  }
  int fd;
  std::string buf;
};

std::string Post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string Get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n";
}

bool HasIpv6Loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

class HttpServerTest : public ::testing::Test {
 protected:
  // Starts a server with /echo (POST: replies with what it saw), /hello (GET), /throw (GET,
  // throws) and /bad-status (GET, returns status 7).
  void StartServer(HttpServerOptions o) {
    server_ = std::make_unique<HttpServer>(std::move(o));
    server_->Route(
        "/echo", {"POST"},
        [this](const HttpRequest& r) {
          calls_.fetch_add(1, std::memory_order_relaxed);  // a counter, read after replies
          return HttpReply{.body = r.method + " " + r.path + "?" + r.query +
                                   " x=" + r.Header("x-test") + " body=" + r.body};
        },
        HttpBody::kRequired);
    server_->Route("/hello", {"GET"}, [](const HttpRequest&) {
      return HttpReply{.content_type = "application/json", .body = "{\"hello\":1}"};
    });
    server_->Route("/throw", {"GET"}, [](const HttpRequest&) -> HttpReply {
      throw std::runtime_error("handler bug");
    });
    server_->Route("/bad-status", {"GET"}, [](const HttpRequest&) { return HttpReply{.code = 7}; });
    auto st = server_->Start();
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
    ASSERT_GT(server_->port(), 0);
  }
  void StartServer(const std::string& addr = "127.0.0.1:0") {
    StartServer(HttpServerOptions{.addr = addr, .max_body_bytes = 1024});
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> calls_{0};
};

TEST_F(HttpServerTest, RoutesGiveHandlersMethodPathQueryHeadersAndBody) {
  StartServer();
  Conn c(server_->port());
  auto r =
      c.Send("POST /echo?a=1 HTTP/1.1\r\nHost: t\r\nX-Test: yes\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /echo?a=1 x=yes body=hello");
  auto hello = c.Send(Get("/hello"));  // the same kept-alive connection
  EXPECT_EQ(hello.status, 200);
  EXPECT_EQ(hello.body, "{\"hello\":1}");
  EXPECT_NE(hello.head.find("Content-Type: application/json"), std::string::npos);
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  StartServer();
  Conn c(server_->port());
  EXPECT_EQ(c.Send(Get("/nope")).status, 404);
  // A small body on a refused request is skipped, and the connection still serves.
  EXPECT_EQ(c.Send(Post("/nope", "{}")).status, 404);
  auto wrong = c.Send(Get("/echo"));
  EXPECT_EQ(wrong.status, 405);
  EXPECT_NE(wrong.head.find("Allow: POST"), std::string::npos) << wrong.head;
  EXPECT_EQ(c.Send(Post("/hello", "{}")).status, 405);
  EXPECT_EQ(c.Send(Get("/hello")).status, 200);
  EXPECT_EQ(calls_.load(std::memory_order_relaxed), 0);
}

// The cap applies to the declared length: the 413 comes back while the body is still unsent,
// and the handler never runs.
TEST_F(HttpServerTest, DeclaredLengthOverTheCapIs413BeforeTheBodyIsSent) {
  StartServer();
  Conn c(server_->port());
  auto r = c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(PeerClosed(c.fd));
  EXPECT_EQ(calls_.load(std::memory_order_relaxed), 0);
}

TEST_F(HttpServerTest, BodyWithoutDeclaredLengthIs411) {
  StartServer();
  Conn chunked(server_->port());
  EXPECT_EQ(chunked
                .Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "2\r\n{}\r\n0\r\n\r\n")
                .status,
            411);
  Conn none(server_->port());  // the route requires a body; no Content-Length at all
  EXPECT_EQ(none.Send("POST /echo HTTP/1.1\r\nHost: t\r\n\r\n").status, 411);
  EXPECT_EQ(calls_.load(std::memory_order_relaxed), 0);
}

TEST_F(HttpServerTest, ExpectContinueGets100ThenTheReply) {
  StartServer();
  Conn c(server_->port());
  auto cont = c.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
      "Content-Length: 2\r\n\r\n");
  EXPECT_EQ(cont.status, 100);
  auto r = c.Send("hi");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /echo? x= body=hi");
}

// A client that declares a body and sends half of it loses its connection at the body deadline;
// it does not keep it (or a thread) until it gives up.
TEST_F(HttpServerTest, HalfABodyIsCutOffAtTheBodyDeadline) {
  StartServer(HttpServerOptions{.addr = "127.0.0.1:0",
                                .max_body_bytes = 1024,
                                .body_timeout = std::chrono::milliseconds(200)});
  Conn c(server_->port());
  ASSERT_TRUE(SendAll(c.fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" +
                                std::string(500, 'x')));
  EXPECT_TRUE(PeerClosed(c.fd));  // closed, no reply: the client stays stalled until then
  EXPECT_EQ(calls_.load(std::memory_order_relaxed), 0);
  Conn next(server_->port());
  EXPECT_EQ(next.Send(Get("/hello")).status, 200);
}

// More stalled bodies than the server (2 threads) or cpprestsdk's pool (40) has threads: a
// server that held a thread per waiting body could not answer the last request.
TEST_F(HttpServerTest, ManyStalledBodiesDoNotStopAFastRequest) {
  StartServer();
  std::vector<std::unique_ptr<Conn>> stalled;
  for (int i = 0; i < 64; ++i) {
    stalled.push_back(std::make_unique<Conn>(server_->port()));
    ASSERT_TRUE(SendAll(stalled.back()->fd,
                        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nabc"));
  }
  Conn fast(server_->port());
  auto r = fast.Send(Post("/echo", "quick"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /echo? x= body=quick");
  server_->Stop();  // returns with the stalled connections still open
}

TEST_F(HttpServerTest, ThrowingHandlerIs500AndTheServerGoesOn) {
  StartServer();
  Conn c(server_->port());
  auto r = c.Send(Get("/throw"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "internal error\n");
  EXPECT_EQ(c.Send(Get("/bad-status")).status, 500);  // not a status: Beast would throw on it
  EXPECT_EQ(c.Send(Get("/hello")).status, 200);
}

TEST_F(HttpServerTest, Ipv6LoopbackWithPortZero) {
  if (!HasIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  StartServer("[::1]:0");
  EXPECT_EQ(server_->BoundAddress(), "[::1]:" + std::to_string(server_->port()));
  Conn c(server_->port(), "::1");
  EXPECT_EQ(c.Send(Get("/hello")).status, 200);
}

TEST_F(HttpServerTest, DualStackTakesIpv4AndIpv6) {
  if (!HasIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  for (const char* addr : {"[::]:0", ":0"}) {
    StartServer(addr);
    Conn v4(server_->port(), "127.0.0.1");
    EXPECT_EQ(v4.Send(Get("/hello")).status, 200) << addr;
    Conn v6(server_->port(), "::1");
    EXPECT_EQ(v6.Send(Get("/hello")).status, 200) << addr;
    server_->Stop();
  }
}

TEST_F(HttpServerTest, Ipv4AddressBindsIpv4Only) {
  StartServer("127.0.0.1:0");
  EXPECT_EQ(server_->BoundAddress(), "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_EQ(Connect("::1", server_->port()), -1);
}

TEST_F(HttpServerTest, BusyPortIsUnavailable) {
  StartServer();
  HttpServer second(HttpServerOptions{.addr = "127.0.0.1:" + std::to_string(server_->port())});
  auto st = second.Start();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kUnavailable);
}

TEST(HttpServerAddress, ParsesHostPortForms) {
  using P = std::pair<std::string, int>;
  EXPECT_EQ(ParseListenAddress("127.0.0.1:8080").value(), P("127.0.0.1", 8080));
  EXPECT_EQ(ParseListenAddress(":9443").value(), P("", 9443));
  EXPECT_EQ(ParseListenAddress("[::]:9443").value(), P("::", 9443));
  EXPECT_EQ(ParseListenAddress("[::1]:0").value(), P("::1", 0));
  EXPECT_EQ(ParseListenAddress("localhost:80").value(), P("localhost", 80));
  for (const char* bad : {"nonsense", "::1:80", "[::1]", "[::1]80", "[]:80", "host:", "host:x1",
                          "host:65536", "host:-1", "host:123456"}) {
    auto r = ParseListenAddress(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << bad;
  }
}

TEST(HttpServerAddress, BadAddressFailsStart) {
  HttpServer s(HttpServerOptions{.addr = "::1:80"});
  auto st = s.Start();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace modelswap
