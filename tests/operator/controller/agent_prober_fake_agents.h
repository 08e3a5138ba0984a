// FakeAgents: many simulated modelswap agents on loopback for the agent prober's tests and the
// rollout benchmark (bench/operator/rollout_bench.cc). Each agent is its own listening socket on
// 127.0.0.1 answering GET /v1/status with a body shaped like the real agent's
// (sidecar/agent/status_json.cc: "models" -> model -> "active" {version, generation, ...}), then
// closing. All agents share one io_context and its threads, so thousands cost a socket each.
// Each agent can be switched to another version, made to answer late, or to accept and never
// answer (hung); the fleet counts the connections open at once and the most ever seen.
//
// Thread safety: every method from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace modelswap::testing {

class FakeAgents {
 public:
  struct Served {
    std::string version;
    int64_t generation = 0;
  };

  FakeAgents(int n, std::string model, Served initial, int threads = 1)
      : model_(std::move(model)), agents_(n) {
    namespace asio = boost::asio;
    for (auto& a : agents_) {
      a.served = initial;
      a.acceptor = std::make_unique<asio::ip::tcp::acceptor>(ioc_);
      asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
      a.acceptor->open(ep.protocol());
      a.acceptor->set_option(asio::socket_base::reuse_address(true));
      a.acceptor->bind(ep);
      a.acceptor->listen(1024);
      a.port = a.acceptor->local_endpoint().port();
    }
    for (int i = 0; i < n; ++i)
      Accept(i);
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this] { ioc_.run(); });
  }
  ~FakeAgents() {
    ioc_.stop();
    for (auto& t : threads_)
      t.join();
    hung_.clear();
  }

  int size() const { return static_cast<int>(agents_.size()); }
  int port(int i) const { return agents_[i].port; }
  void SetServed(int i, Served s) {
    std::lock_guard lock(mu_);
    agents_[i].served = std::move(s);
  }
  // Answers after `d` (the connection stays open meanwhile).
  void SetDelay(int i, std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    agents_[i].delay = d;
  }
  // Accepts and reads, never answers (until destroyed).
  void SetHung(int i, bool hung) {
    std::lock_guard lock(mu_);
    agents_[i].hung = hung;
  }
  int open_now() const { return open_.load(std::memory_order_relaxed); }
  // Connections open at once, as the agents' sockets live: a client's close and its next
  // connect can be handled out of order across sockets, so this may run one or two past what
  // the client held.
  int max_open() const { return max_open_.load(std::memory_order_relaxed); }
  // Requests being served at once: from the request read to the start of the answer's write.
  // The client cannot send its next request before it has an answer, so this never overstates
  // what the client had in flight.
  int max_in_service() const { return max_in_service_.load(std::memory_order_relaxed); }
  int64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  int64_t requests_to(int i) const {
    std::lock_guard lock(mu_);
    return agents_[i].requests;
  }

  // A body like the real agent's for one model (sizes and fields as status_json.cc renders).
  static std::string Body(const std::string& model, const Served& s) {
    std::string g = std::to_string(s.generation);
    return "{\"models\":{\"" + model + "\":{\"state\":\"ready\",\"active\":{\"version\":\"" +
           s.version + "\",\"generation\":" + g +
           ",\"bytes\":268435456,\"checksum\":\"xxh3:0123456789abcdef\",\"file\":\"/models/" +
           model + "/versions/" + s.version + ".msf\",\"source_file\":\"/models/" + model +
           "/versions/" + s.version +
           ".msf\",\"entries\":262144,\"published_at\":\"2025-01-01T00:00:00Z\","
           "\"prefault_method\":\"madvise_populate_read\",\"load_seconds\":{\"stage\":0.0,"
           "\"map\":0.001,\"prefault\":0.2,\"verify\":0.5}},\"resident_bytes\":268435456,"
           "\"swaps\":" +
           g +
           ",\"rejections\":0,\"reclaimed\":0,\"truncations\":0,\"live_readers\":1,"
           "\"held_generations\":[" +
           g +
           "],\"inotify\":true,\"agent_incarnation\":1,\"manifest_error\":null,"
           "\"last_rejected\":null,\"retired\":[],\"manifest_errors\":0,"
           "\"generation_conflict\":null,\"generation_conflicts\":0,\"degraded\":null,"
           "\"volume\":null}},\"ready\":true}";
  }

 private:
  struct Agent {
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
    int port = 0;
    Served served;
    std::chrono::milliseconds delay{0};
    bool hung = false;
    int64_t requests = 0;
  };
  // One accepted connection: counted open from accept to the socket's destruction.
  static void Raise(std::atomic<int>& count, std::atomic<int>& max) {
    int now = count.fetch_add(1, std::memory_order_relaxed) + 1;
    int seen = max.load(std::memory_order_relaxed);
    while (now > seen && !max.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
  }
  struct Conn {
    explicit Conn(FakeAgents* f, boost::asio::ip::tcp::socket s)
        : fleet(f), sock(std::move(s)), timer(sock.get_executor()) {
      Raise(fleet->open_, fleet->max_open_);
    }
    ~Conn() { fleet->open_.fetch_sub(1, std::memory_order_relaxed); }
    FakeAgents* fleet;
    boost::asio::ip::tcp::socket sock;
    boost::asio::steady_timer timer;
    boost::asio::streambuf in;
    std::string out;
  };

  void Accept(int i) {
    agents_[i].acceptor->async_accept(
        [this, i](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
          if (ec) return;  // stopped
          auto c = std::make_shared<Conn>(this, std::move(s));
          boost::asio::async_read_until(c->sock, c->in, "\r\n\r\n",
                                        [this, i, c](boost::system::error_code e, size_t) {
                                          if (!e) Answer(i, c);
                                        });
          Accept(i);
        });
  }

  void Answer(int i, const std::shared_ptr<Conn>& c) {
    Raise(in_service_, max_in_service_);
    std::chrono::milliseconds delay;
    {
      std::lock_guard lock(mu_);
      Agent& a = agents_[i];
      ++a.requests;
      if (a.hung) {
        hung_.push_back(c);  // held open, unanswered, until the fleet goes
        return;
      }
      std::string body = Body(model_, a.served);
      c->out =
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      delay = a.delay;
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    c->timer.expires_after(delay);
    c->timer.async_wait([this, c](boost::system::error_code) {
      in_service_.fetch_sub(1, std::memory_order_relaxed);
      boost::asio::async_write(c->sock, boost::asio::buffer(c->out),
                               [c](boost::system::error_code, size_t) {
                                 boost::system::error_code ignored;
                                 c->sock.shutdown(boost::asio::socket_base::shutdown_both, ignored);
                               });
    });
  }

  // Relaxed: counters read after the fact; no other data is published through them. Declared
  // first: connections still queued in ioc_ decrement open_ when ioc_ destroys them.
  std::atomic<int> open_{0}, max_open_{0}, in_service_{0}, max_in_service_{0};
  std::atomic<int64_t> requests_{0};
  std::string model_;
  boost::asio::io_context ioc_;
  mutable std::mutex mu_;
  std::vector<Agent> agents_;                // served/delay/hung/requests guarded by mu_
  std::vector<std::shared_ptr<Conn>> hung_;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace modelswap::testing
