// Keeping a node cache within its budget: LRU-K (K = 2) over chunks and assembled versions,
// between a high and a low watermark, and cleaning up what dead processes left behind.
//
// One pass (one process at a time: the exclusive lock on locks/evict):
//   1. Scan (cache_scan.h): allocated bytes of everything, access histories.
//   2. Temps and recipes without their .msf whose owner's lock is free (chunk fill lock for a
//      chunk temp, version build lock for a version temp) are removed: the lock, not a pid, says
//      whether the writer lives (a pid may be reused; a dead process holds no lock).
//   3. If the allocated bytes exceed high_watermark * max_bytes (or the pass is forced because a
//      write hit ENOSPC), entries are removed in LRU-K order (access_history.h) until they are at
//      or below low_watermark * max_bytes (forced: also at least need_bytes below the current
//      use), skipping
//        - a chunk being filled (its fill lock is taken: F_OFD_SETLK fails),
//        - a version someone holds (its hold byte cannot be locked exclusively), and
//        - each model's newest assembled version (the most recently referenced), which the
//          model's agents are about to use or already use even when no hold is live (e.g. while
//          an agent restarts).
//      Each removal happens while holding that entry's lock exclusively, so no filler or holder
//      can start using it in between.
// Skipped entries can keep the cache above its low watermark; the stats say how many and why.
//
// Thread safety: safe from any number of threads and processes.
#pragma once

#include <cstdint>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/cache_options.h"

namespace modelswap::cache {

struct EvictRequest {
  bool force = false;       // evict even below the high watermark (after ENOSPC)
  uint64_t need_bytes = 0;  // forced: free at least this much if possible
};

struct EvictStats {
  bool ran = false;  // above the high watermark (or forced): entries were considered
  uint64_t bytes_before = 0, bytes_after = 0, target_bytes = 0;
  uint64_t chunks_evicted = 0, versions_evicted = 0, temps_removed = 0;
  uint64_t skipped_filling = 0, skipped_held = 0, skipped_newest = 0;
};

[[nodiscard]] Result<EvictStats> Evict(Env* env, const CacheOptions& options,
                                       const EvictRequest& request = {});

}  // namespace modelswap::cache
