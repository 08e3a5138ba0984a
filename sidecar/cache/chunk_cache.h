// The node's chunk cache: <cache>/chunks/<2 hex>/<64 hex>, each file the verified, uncompressed
// bytes of one chunk, filled from the model volume at most once per node however many agents
// ask at the same moment.
//
// Why uncompressed: assembling a version copies chunk bytes into the version file, and the cache
// lives on the node's local disk, where space is cheaper than the CPU of decompressing the same
// chunk for every version that uses it (desync's local chunk cache makes the other choice
// because it mirrors a remote store byte for byte; this one is private to the node).
//
// Get(hash) protocol, one chunk:
//   1. Lock-free fast path: open the final file; if it has the right length and SHA-256, use it.
//   2. Else take the chunk's fill lock (exclusive OFD lock, LockKind::kChunkFill), waiting with
//      F_OFD_SETLKW while another process or thread fills it. If that filler dies, the kernel
//      drops its lock and this waiter becomes the filler (takeover).
//   3. Holding the lock, look again (the previous holder may have filled it); a final file that
//      fails its check is removed. Temps of this chunk are a dead filler's: removed.
//   4. Fetch from the source (the volume's ChunkStore::Get), check the SHA-256; a failed fetch
//      of kind kCorruption or a hash mismatch is fetched once more, then the chunk is rejected
//      with kCorruption naming its hex. Write a temp, set its history, 0444, rename into place.
// Chunk files are not fsynced: every read checks the SHA-256 (step 1), so a chunk torn by a
// power cut is detected, removed and fetched again, and syncing thousands of small files would
// cost more than the rare refetch.
//
// Thread safety: a ChunkCache may be shared by threads; each Get takes its own lock description.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunk_hash.h"

namespace modelswap::cache {

// Reads one chunk's bytes into `out` (exactly its length) from wherever chunks come from: the
// agent passes the volume's ChunkStore::Get. May be called from several threads at once.
using ChunkSourceFn = std::function<Status(const chunk::ChunkHash&, std::span<std::byte> out)>;

enum class ChunkOrigin { kCache, kFetched };

struct ChunkGet {
  ChunkOrigin origin = ChunkOrigin::kCache;
  int fetches = 0;  // calls to the source (2 after a corrupt first fetch)
};

class ChunkCache {
 public:
  ChunkCache(Env* env, std::string cache_dir, int64_t correlated_period_ns)
      : env_(env), dir_(std::move(cache_dir)), correlated_period_ns_(correlated_period_ns) {}

  // Fills out (its size is the chunk's length) with the chunk's verified bytes.
  // kCorruption "chunk <hex>: ..." after two bad fetches; the source's error (with the chunk's
  // hex as context) otherwise, e.g. kNotFound for a chunk missing from the volume.
  [[nodiscard]] Result<ChunkGet> Get(const chunk::ChunkHash& hash, std::span<std::byte> out,
                                     const ChunkSourceFn& source);

 private:
  // true: out holds the cached, verified chunk. false: absent or bad (bad ones are removed when
  // remove_bad is set, i.e. under the fill lock).
  bool ReadCached(const chunk::ChunkHash& hash, std::span<std::byte> out, bool remove_bad);
  Result<int> FetchVerified(const chunk::ChunkHash& hash, std::span<std::byte> out,
                            const ChunkSourceFn& source);
  Status Publish(const chunk::ChunkHash& hash, std::span<const std::byte> bytes);
  void RemoveDeadTemps(const chunk::ChunkHash& hash);

  Env* env_;
  std::string dir_;
  int64_t correlated_period_ns_;
};

}  // namespace modelswap::cache
