// What a node cache is configured with: its directory, its size budget and how hard to work.
// The same values must be used by every agent sharing one directory (the chart sets them once
// per node: --cache-dir, --cache-max-bytes).
#pragma once

#include <cstdint>
#include <string>

namespace modelswap::cache {

// References to one entry closer together than this count as one (access_history.h).
inline constexpr int64_t kDefaultCorrelatedPeriodNs = 10'000'000'000;

struct CacheOptions {
  std::string dir;
  // The budget eviction keeps the cache's allocated bytes under (0: never evict on its own; an
  // out-of-space error still triggers one eviction pass).
  uint64_t max_bytes = 0;
  // Eviction starts above high_watermark * max_bytes and stops at low_watermark * max_bytes.
  double high_watermark = 0.9;
  double low_watermark = 0.8;
  // Threads that read chunks (from the cache or the volume) in one Assemble.
  int fetch_threads = 4;
  // Threads that copy ranges shared with the model's previous assembled version (at the same
  // time as the fetches).
  int copy_threads = 2;
  int64_t correlated_period_ns = kDefaultCorrelatedPeriodNs;
  // Run an eviction pass after each successful Assemble (when max_bytes > 0).
  bool evict_after_assemble = true;
};

}  // namespace modelswap::cache
