// A minimal HTTP/1.1 server over loopback sockets for the fake Kubernetes API server.
//
// Written on plain sockets (one thread per connection, keep-alive) rather than a framework so
// the tests control the wire exactly as a real kube-apiserver behaves: bodies over 2 KiB go out
// chunked even for a plain GET, a watch flushes its headers at once and then sends one event per
// chunk, and a connection can be cut mid-stream (no terminating chunk) to simulate a dropped
// watch or a server restart.
//
// Thread safety: Start/Stop from the owner; the handler runs on connection threads.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace modelswap::fake {

struct HttpRequest {
  std::string method;
  std::string path;                            // without the query
  std::map<std::string, std::string> query;    // percent-decoded
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A response writer: either one Send() or BeginStream() + Chunk()* + EndStream().
class HttpConn {
 public:
  explicit HttpConn(int fd) : fd_(fd) {}
  // Sends a complete response; bodies over 2048 bytes are chunked like Go's net/http does.
  bool Send(int code, const std::string& body, const std::string& content_type = "application/json",
            const std::map<std::string, std::string>& extra_headers = {});
  bool BeginStream(int code);
  bool Chunk(const std::string& data);
  bool EndStream();
  int fd() const { return fd_; }

 private:
  bool WriteAll(const std::string& data);
  int fd_;
};

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpConn&)>;
  explicit HttpServer(Handler handler) : handler_(std::move(handler)) {}
  ~HttpServer() { Stop(); }

  // Binds 127.0.0.1:port (0 = any free port) and starts accepting.
  bool Start(int port = 0);
  // Closes the listener and cuts every open connection (no terminating chunks).
  void Stop();
  int port() const { return port_; }
  // Cuts connections whose fd is in `fds` (watch streams).
  void Cut(const std::set<int>& fds);

 private:
  void AcceptLoop();
  void Serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};  // relaxed/acq-rel not needed: threads also see closed fds
  std::thread accept_thread_;
  std::mutex mu_;
  std::set<int> open_fds_;
  std::vector<std::thread> conn_threads_;
};

std::string StatusText(int code);

}  // namespace modelswap::fake
