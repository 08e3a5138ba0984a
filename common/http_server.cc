// Plain HTTP endpoints with cpprestsdk; see http_server.h.
#include "common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpprest/http_listener.h>

namespace modelswap {
namespace {

// Port 0: cpprestsdk cannot report the port it bound, so pick a free one first.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace

Result<std::pair<std::string, int>> ParseListenAddress(const std::string& addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) {
    return Fail(Code::kInvalidArgument, "listen address \"" + addr + "\" is not host:port");
  }
  std::string host = addr.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  try {
    size_t used = 0;
    int port = std::stoi(addr.substr(colon + 1), &used);
    if (used != addr.size() - colon - 1 || port < 0 || port > 65535) throw std::out_of_range("");
    return std::make_pair(host, port);
  } catch (...) {
    return Fail(Code::kInvalidArgument, "listen address \"" + addr + "\" has a bad port");
  }
}

HttpServer::HttpServer(std::string addr) : addr_(std::move(addr)) {}

HttpServer::~HttpServer() {
  Stop();
}

void HttpServer::Route(const std::string& path, Handler h) {
  routes_[path] = std::move(h);
}

Status HttpServer::Start() {
  MS_ASSIGN_OR_RETURN(auto hp, ParseListenAddress(addr_));
  port_ = hp.second == 0 ? FreePort() : hp.second;
  std::string url = "http://" + hp.first + ":" + std::to_string(port_);
  try {
    listener_ = std::make_unique<web::http::experimental::listener::http_listener>(url);
    listener_->support([this](web::http::http_request req) {
      auto it = routes_.find(req.relative_uri().path());
      if (it == routes_.end()) {
        req.reply(404, "not found\n");
        return;
      }
      std::string body = req.extract_string(true).get();
      HttpReply r = it->second(req.method(), body);
      req.reply(r.code, r.body, r.content_type);
    });
    listener_->open().wait();
  } catch (const std::exception& e) {
    listener_.reset();
    return Fail(Code::kUnavailable, "listen on " + url + ": " + e.what());
  }
  return Ok();
}

void HttpServer::Stop() {
  if (!listener_) return;
  try {
    listener_->close().wait();
  } catch (...) {
  }
  listener_.reset();
}

}  // namespace modelswap
