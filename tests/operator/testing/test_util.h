// Helpers shared by the operator tests: recorded fixture files, bounded waiting on conditions
// (never sleeping as synchronisation), temporary directories and a fake clock Env.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"

namespace modelswap::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Fixture(const std::string& name) {
  return ReadFile(std::string(MODELSWAP_FIXTURES_DIR) + "/" + name);
}

// One request/response pair of a recorded *.http fixture.
struct Exchange {
  std::string request_line;
  std::string request_body;
  int status = 0;
  std::vector<std::string> response_headers;
  std::string response_body;
};

inline std::vector<Exchange> ParseHttpFixture(const std::string& text) {
  std::vector<Exchange> out;
  size_t pos = 0;
  auto next_marker = [&](size_t from, const std::string& marker) {
    size_t p = text.find(marker, from);
    return p == std::string::npos ? text.size() : p;
  };
  while ((pos = text.find("### request\n", pos)) != std::string::npos) {
    Exchange ex;
    size_t req_start = pos + 12;
    size_t resp = next_marker(req_start, "### response\n");
    std::string req = text.substr(req_start, resp - req_start);
    ex.request_line = req.substr(0, req.find('\n'));
    size_t blank = req.find("\n\n");
    if (blank != std::string::npos) ex.request_body = req.substr(blank + 2);
    size_t resp_start = resp + 13;
    size_t end = next_marker(resp_start, "### request\n");
    std::string r = text.substr(resp_start, end - resp_start);
    ex.status = std::atoi(r.substr(9, 3).c_str());
    size_t rb = r.find("\n\n");
    std::istringstream headers(r.substr(0, rb));
    std::string line;
    std::getline(headers, line);
    while (std::getline(headers, line))
      ex.response_headers.push_back(line);
    if (rb != std::string::npos) ex.response_body = r.substr(rb + 2);
    out.push_back(std::move(ex));
    pos = end;
  }
  return out;
}

// Polls `cond` until true or the deadline; returns whether it became true. The deadline is a
// generous bound for a loaded 2-core machine, not a timing assertion.
inline bool WaitFor(const std::function<bool()>& cond,
                    std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/modelswap-op-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string Write(const std::string& name, const std::string& text, bool exec = false) const {
    std::string p = path + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
    if (exec) std::filesystem::permissions(p, std::filesystem::perms::owner_all);
    return p;
  }
};

// Real filesystem, controllable clocks.
class FakeClockEnv : public EnvWrapper {
 public:
  FakeClockEnv() : EnvWrapper(DefaultEnv()) {}
  int64_t NowMonotonicNanos() override { return mono_.load(std::memory_order_relaxed); }
  int64_t NowUnixNanos() override { return unix_.load(std::memory_order_relaxed); }
  void Advance(std::chrono::nanoseconds d) {
    mono_.fetch_add(d.count(), std::memory_order_relaxed);
    unix_.fetch_add(d.count(), std::memory_order_relaxed);
  }
  void SetUnix(int64_t ns) { unix_.store(ns, std::memory_order_relaxed); }

 private:
  // Relaxed: tests advance the clock from the thread that then calls the code under test.
  std::atomic<int64_t> mono_{1'000'000'000'000};
  std::atomic<int64_t> unix_{1'790'000'000'000'000'000};
};

}  // namespace modelswap::testing
