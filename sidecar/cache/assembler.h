// Assemble: the one call an agent makes to turn a chunked version's recipe into a verified .msf
// file in the node cache, built once per node and mapped by every pod of the node (one copy in
// the page cache).
//
//   1. The recipe is checked (assembly_plan.h) and the cache layout created if missing.
//   2. Already assembled? Hold it and return (a header check first; a damaged file is rebuilt;
//      one marked by another boot is verified in full again under the build lock, durability.h).
//   3. Take the version's build lock (exclusive, waiting with F_OFD_SETLKW). A concurrent
//      assembler of the same version builds while the others wait here; when it finishes they
//      find the file (step 2 again); if it died, the kernel released its lock and the first
//      waiter builds instead, after removing the dead builder's temps (holding the build lock
//      proves no live process writes them).
//   4. Build under a temp name (version_builder.h): ranges shared with the model's previous
//      assembled version are copied (reflinked where possible), holes stay holes, the other
//      chunks come through the chunk cache at the same time (a delta entry's base from the
//      chunk cache, the previous version or the volume, delta_base.h); the boot mark instead of
//      an fsync (durability.h); full .msf verification, header checksum == recipe.msf_checksum,
//      model and version as the recipe says.
//   5. Publish: the recipe beside it, the file made 0444, the hold lock taken, then the temp
//      renamed to the final name (never replacing), the directory fsynced. Only verified files
//      ever carry a final name; SIGKILL at any point leaves at most a temp, removed by the next
//      builder or by eviction.
// Out of space (ENOSPC/EDQUOT) anywhere in step 4 runs one forced eviction pass and one more
// build; still out of space is a kIOError naming the cache directory. A failed verification
// after copying from a previous version is retried once without one.
//
// Thread safety: Assemble may run concurrently in any number of threads and processes sharing
// one cache directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/cache_options.h"
#include "sidecar/cache/chunk_cache.h"
#include "sidecar/cache/hold.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::cache {

struct AssembleStats {
  uint64_t chunks_total = 0;
  uint64_t chunks_fetched = 0;        // read from the source (the volume)
  uint64_t chunks_from_cache = 0;     // read from the node's chunk cache
  uint64_t chunks_from_previous = 0;  // copied from the previous assembled version
  uint64_t holes = 0;                 // zero runs, never written
  uint64_t bytes_total = 0;
  uint64_t bytes_fetched = 0;
  uint64_t bytes_from_cache = 0;
  uint64_t bytes_from_previous = 0;
  uint64_t hole_bytes = 0;
  uint64_t refetches = 0;  // extra fetches of chunks (or bases) whose first fetch was corrupt
  // Delta entries (chunk_store.h): of chunks_fetched, those fetched as a delta file; and where
  // their bases came from (delta_base.h), one per delta entry fetched. Bases are not recipe
  // entries: they are not in the chunks_* and bytes_* counts above.
  uint64_t delta_chunks_fetched = 0;
  uint64_t bases_from_cache = 0;
  uint64_t bases_from_previous = 0;
  uint64_t bases_fetched = 0;  // fetched whole from the volume (and then cached)
  uint64_t base_bytes_fetched = 0;
  uint64_t bytes_reflinked = 0;  // of bytes_from_previous, shared by FICLONERANGE
  bool reflink_used = false;
  bool already_assembled = false;  // someone else built it (no chunk was read)
  bool waited_for_builder = false;
  std::string previous_version;  // the base copied from; empty if none
  int evictions_for_space = 0;
  bool fsync_deferred = false;  // published unsynced, marked with this boot's id (durability.h)
  bool reverified = false;      // found marked by another boot: verified in full again, synced
  // Where the build's wall time went (seconds; all 0 when already_assembled). Fetching chunks
  // and copying from the previous version run at the same time (version_builder.h), so
  // fill_seconds, not their sum, is what they cost.
  double plan_seconds = 0;     // choosing the previous version, the plan
  double copy_seconds = 0;     // ranges from the previous version (reflink / copy_file_range)
  double fetch_seconds = 0;    // chunks through the chunk cache (fetch, decompress, hash, write)
  double fill_seconds = 0;     // both of the above, overlapped
  double fsync_seconds = 0;    // data fsync (0 when deferred: see "Durability" in README.md)
  double verify_seconds = 0;   // the full .msf check of the temp
  double publish_seconds = 0;  // recipe beside it, rename, directory fsync
};

struct AssembleProgress {
  std::string_view phase;  // "previous", "chunks", "verify"
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
};
// Called from the assembling threads, one call at a time (serialised by the assembler).
using ProgressFn = std::function<void(const AssembleProgress&)>;

struct Assembled {
  std::string path;  // <cache>/versions/<model>/<version>-<16 hex>.msf
  Hold hold;         // the caller holds it until it stops mapping it
  AssembleStats stats;
};

[[nodiscard]] Result<Assembled> Assemble(Env* env, const CacheOptions& options,
                                         const chunk::Recipe& recipe, const ChunkSourceFn& fetch,
                                         const ProgressFn& progress = {});

}  // namespace modelswap::cache
