// Filling a region that is being restored (built under no name, so nothing else sees it yet) from
// the data of snapshot files: a full snapshot's image, then each delta of its chain in turn.
//
// Every restored non-zero block lands in the work image only, tagged with the restored
// generation in slot 0 and "in work" in slot 1 (region_layout.h); zero blocks are holes with tags
// 0, so a sparse state stays sparse in memory. The fillers take the file's data as the chunks
// ReadData streams (any sizes, in order), so they never hold a whole file.
//
// Thread safety: one filler per restore, on the restoring thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "sidecar/client/region/region_file.h"
#include "sidecar/snapshot/snapshot_format.h"

namespace modelswap::snapshot {

// Copies a chunk of a full snapshot's image (at `offset` in the image) into the region.
[[nodiscard]] Status FillFromFull(RegionFile& region, uint64_t gen, uint64_t offset,
                                  std::span<const std::byte> chunk);

// Applies one delta: its index first (checked entry by entry: kCorruption naming the entry),
// then its packed blocks.
class DeltaFiller {
 public:
  DeltaFiller(RegionFile& region, const SnapshotHeader& delta, uint64_t gen);
  // The chunk at `offset` in the delta's data (index, then blocks).
  [[nodiscard]] Status Add(uint64_t offset, std::span<const std::byte> chunk);
  // kCorruption if the data ended before every block arrived.
  [[nodiscard]] Status Finish() const;

 private:
  Status IndexDone();
  Status AddBlockBytes(std::span<const std::byte> bytes);

  RegionFile& region_;
  const SnapshotHeader& delta_;
  uint64_t gen_;
  uint64_t index_bytes_;
  std::vector<std::byte> index_;  // raw index, until complete
  std::vector<uint64_t> blocks_;  // the stored (non-zero) blocks, in order
  size_t next_ = 0;               // blocks_[next_] receives the next data bytes
  uint64_t within_ = 0;           // bytes of blocks_[next_] already written
};

// The region's generations say "committed, pinned and durable at gen".
void SetRestoredGenerations(RegionFile& region, uint64_t gen);

}  // namespace modelswap::snapshot
