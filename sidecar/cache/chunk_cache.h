// The node's chunk cache: <cache>/chunks/<2 hex>/<64 hex>, each file the verified, uncompressed
// bytes of one chunk, filled from the model volume at most once per node however many agents
// ask at the same moment.
//
// Why uncompressed: assembling a version copies chunk bytes into the version file, and the cache
// lives on the node's local disk, where space is cheaper than the CPU of decompressing the same
// chunk for every version that uses it (desync's local chunk cache makes the other choice
// because it mirrors a remote store byte for byte; this one is private to the node).
//
// Get(entry) protocol, one chunk:
//   1. Lock-free fast path (Lookup): open the final file; if it has the right length and
//      SHA-256, use it.
//   2. Else take the chunk's fill lock (exclusive OFD lock, LockKind::kChunkFill), waiting with
//      F_OFD_SETLKW while another process or thread fills it. If that filler dies, the kernel
//      drops its lock and this waiter becomes the filler (takeover).
//   3. Holding the lock, look again (the previous holder may have filled it); a final file that
//      fails its check is removed. Temps of this chunk are a dead filler's: removed.
//   4. Fetch from the source (ChunkStoreSource: ChunkStore::Get, or GetDelta against the base's
//      bytes for a delta entry), check the SHA-256; a failed fetch of kind kCorruption or a hash
//      mismatch is fetched once more, then the chunk is rejected with kCorruption naming its hex
//      (and its base's, for a delta). Write a temp, set its history, 0444, rename into place.
// Whatever way the volume stores a chunk (whole or as a delta), its cache file is the chunk's
// own uncompressed bytes, so a delta entry found here needs no base. A delta entry's base bytes
// are found by the caller before Get (delta_base.h), never while holding a fill lock: a chunk
// that is a delta in one recipe may be a base in another, and OFD locks have no deadlock
// detection, so a filler never waits for one chunk's lock while holding another's.
// Chunk files are not fsynced: every read checks the SHA-256 (step 1), so a chunk torn by a
// power cut is detected, removed and fetched again, and syncing thousands of small files would
// cost more than the rare refetch.
//
// Thread safety: a ChunkCache may be shared by threads; each Get takes its own lock description.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunk_hash.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::cache {

// Reads one recipe entry's bytes into `out` (exactly c.length bytes) from wherever chunks come
// from: the agent passes ChunkStoreSource over the volume's store. For a delta entry `base` holds
// its base chunk's verified bytes (c.base_length of them); for a whole entry it is empty. May be
// called from several threads at once.
using ChunkSourceFn = std::function<Status(
    const chunk::RecipeChunk& c, std::span<const std::byte> base, std::span<std::byte> out)>;

// The source over a volume's chunk store: Get for a whole entry, GetDelta for a delta entry
// (both verify length and SHA-256, kCorruption naming the chunk, and its base for a delta).
[[nodiscard]] ChunkSourceFn ChunkStoreSource(std::shared_ptr<chunk::ChunkStore> store);

// "chunk <hex>", or "chunk <hex> (a delta against <base hex>)": how errors name an entry.
[[nodiscard]] std::string DescribeEntry(const chunk::RecipeChunk& c);

// The whole (non-delta) entry for a chunk of `length` bytes: how a delta's base is read.
[[nodiscard]] chunk::RecipeChunk WholeEntry(const chunk::ChunkHash& hash, uint32_t length);

enum class ChunkOrigin { kCache, kFetched };

struct ChunkGet {
  ChunkOrigin origin = ChunkOrigin::kCache;
  int fetches = 0;  // calls to the source (2 after a corrupt first fetch)
};

class ChunkCache {
 public:
  ChunkCache(Env* env, std::string cache_dir, int64_t correlated_period_ns)
      : env_(env), dir_(std::move(cache_dir)), correlated_period_ns_(correlated_period_ns) {}

  // Lock-free: true if the chunk's cache file is there and passes its check (out, whose size
  // is the chunk's length, then holds its bytes). A bad file is left for Get to remove.
  [[nodiscard]] bool Lookup(const chunk::ChunkHash& hash, std::span<std::byte> out);

  // Fills out (c.length bytes) with entry c's verified bytes, from the cache or fetched through
  // source and cached. REQUIRES: !c.hole; for a delta entry, `base` is its base's verified bytes
  // (c.base_length; kInvalidArgument otherwise), else empty.
  // kCorruption "chunk <hex>: ..." after two bad fetches; the source's error (with the chunk's
  // hex, and its base's for a delta, as context) otherwise, e.g. kNotFound for a chunk missing
  // from the volume.
  [[nodiscard]] Result<ChunkGet> Get(const chunk::RecipeChunk& c, std::span<const std::byte> base,
                                     std::span<std::byte> out, const ChunkSourceFn& source);

 private:
  // true: out holds the cached, verified chunk. false: absent or bad (bad ones are removed when
  // remove_bad is set, i.e. under the fill lock).
  bool ReadCached(const chunk::ChunkHash& hash, std::span<std::byte> out, bool remove_bad);
  Result<int> FetchVerified(const chunk::RecipeChunk& c, std::span<const std::byte> base,
                            std::span<std::byte> out, const ChunkSourceFn& source);
  Status Publish(const chunk::ChunkHash& hash, std::span<const std::byte> bytes);
  void RemoveDeadTemps(const chunk::ChunkHash& hash);

  Env* env_;
  std::string dir_;
  int64_t correlated_period_ns_;
};

}  // namespace modelswap::cache
