// Loopback HTTP/1.1 server for the fake API server; see fake_http.h.
#include "tests/operator/fake/fake_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

namespace modelswap::fake {
namespace {

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string Lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string StatusText(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

bool HttpConn::WriteAll(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool HttpConn::Send(int code, const std::string& body, const std::string& content_type,
                    const std::map<std::string, std::string>& extra) {
  std::ostringstream h;
  h << "HTTP/1.1 " << code << " " << StatusText(code) << "\r\n"
    << "Audit-Id: fake\r\nCache-Control: no-cache, private\r\nContent-Type: " << content_type
    << "\r\n";
  for (const auto& [k, v] : extra)
    h << k << ": " << v << "\r\n";
  if (body.size() > 2048) {
    h << "Transfer-Encoding: chunked\r\n\r\n";
    std::ostringstream c;
    c << std::hex << body.size() << "\r\n" << body << "\r\n0\r\n\r\n";
    return WriteAll(h.str() + c.str());
  }
  h << "Content-Length: " << body.size() << "\r\n\r\n";
  return WriteAll(h.str() + body);
}

bool HttpConn::BeginStream(int code) {
  return WriteAll("HTTP/1.1 " + std::to_string(code) + " " + StatusText(code) +
                  "\r\nAudit-Id: fake\r\nCache-Control: no-cache, private\r\n"
                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
}

bool HttpConn::Chunk(const std::string& data) {
  std::ostringstream c;
  c << std::hex << data.size() << "\r\n" << data << "\r\n";
  return WriteAll(c.str());
}

bool HttpConn::EndStream() {
  return WriteAll("0\r\n\r\n");
}

bool HttpServer::Start(int port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  stopping_ = false;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void HttpServer::Stop() {
  if (listen_fd_ < 0 && !accept_thread_.joinable()) return;
  stopping_ = true;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_)
      ::shutdown(fd, SHUT_RDWR);
    threads.swap(conn_threads_);
  }
  for (auto& t : threads)
    t.join();
}

void HttpServer::Cut(const std::set<int>& fds) {
  std::lock_guard lock(mu_);
  for (int fd : fds) {
    if (open_fds_.count(fd) != 0) ::shutdown(fd, SHUT_RDWR);
  }
}

void HttpServer::AcceptLoop() {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard lock(mu_);
    open_fds_.insert(fd);
    conn_threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void HttpServer::Serve(int fd) {
  std::string buf;
  char tmp[16384];
  HttpConn conn(fd);
  for (;;) {
    size_t header_end;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) goto done;
      buf.append(tmp, static_cast<size_t>(n));
    }
    {
      HttpRequest req;
      std::istringstream head(buf.substr(0, header_end));
      std::string line, target, version;
      std::getline(head, line);
      std::istringstream(line) >> req.method >> target >> version;
      while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
          value.erase(0, 1);
        req.headers[Lower(line.substr(0, colon))] = value;
      }
      size_t body_len =
          req.headers.count("content-length") ? std::stoul(req.headers["content-length"]) : 0;
      buf.erase(0, header_end + 4);
      while (buf.size() < body_len) {
        ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0) goto done;
        buf.append(tmp, static_cast<size_t>(n));
      }
      req.body = buf.substr(0, body_len);
      buf.erase(0, body_len);
      auto q = target.find('?');
      req.path = PercentDecode(target.substr(0, q));
      if (q != std::string::npos) {
        std::istringstream qs(target.substr(q + 1));
        std::string kv;
        while (std::getline(qs, kv, '&')) {
          auto eq = kv.find('=');
          req.query[PercentDecode(kv.substr(0, eq))] =
              eq == std::string::npos ? "" : PercentDecode(kv.substr(eq + 1));
        }
      }
      handler_(req, conn);
      if (Lower(req.headers["connection"]) == "close" || req.query.count("watch")) break;
    }
  }
done : {
  std::lock_guard lock(mu_);
  open_fds_.erase(fd);
}
  ::close(fd);
}

}  // namespace modelswap::fake
