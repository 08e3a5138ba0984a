// The agent's side of the node cache (sidecar/cache/): which directory it uses and why (the
// node cache from --cache-dir, or a per-pod fallback), and the eviction passes that keep it
// within --cache-max-bytes, run on a thread of their own - never on a model loop, whose
// heartbeat must not wait for a directory scan - after each chunked load and every
// `interval_ns`. Each pass also measures the cache's allocated bytes (cache::Evict scans the
// whole directory anyway), which /v1/status and /metrics report with the last pass's stats.
//
// Many agents on a node run passes against one directory; cache::Evict serialises them with
// its own lock, so a pass here may wait behind another agent's.
//
// Thread safety: Poke() and Status() from any thread; the destructor stops and joins the thread
// (it waits for a running pass).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/env.h"
#include "sidecar/cache/cache_options.h"
#include "sidecar/cache/eviction.h"

namespace modelswap::agent {

struct CacheConfig {
  cache::CacheOptions options;
  // true: a directory shared by every agent of the node (--cache-dir, a hostPath); false: a
  // per-pod fallback (no hostPath allowed, e.g. Pod Security "baseline"), where each pod
  // fetches and assembles every version on its own.
  bool node_cache = false;
  std::string why;  // how the directory was chosen, for /v1/status
  int64_t interval_ns = 300'000'000'000;
};

struct CacheStatus {
  CacheConfig config;
  uint64_t allocated_bytes = 0;  // at the last pass (0 before the first)
  uint64_t passes = 0, pass_errors = 0;
  std::optional<cache::EvictStats> last;  // the last successful pass
  int64_t last_at_unix_ns = 0;
  std::string last_error;  // of the last pass ("" if it succeeded)
  // Totals over this agent's passes (counters).
  uint64_t chunks_evicted = 0, versions_evicted = 0, temps_removed = 0;
};

class CacheJanitor {
 public:
  CacheJanitor(Env* env, CacheConfig config);
  ~CacheJanitor();
  CacheJanitor(const CacheJanitor&) = delete;
  CacheJanitor& operator=(const CacheJanitor&) = delete;

  // Asks for a pass soon (after a chunked version was loaded).
  void Poke();
  CacheStatus Status();

 private:
  void Run();

  Env* const env_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool poked_ = true;  // a first pass at start: measures the cache, removes dead temps
  bool stop_ = false;
  CacheStatus status_;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace modelswap::agent
