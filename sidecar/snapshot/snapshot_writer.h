// Writing one snapshot file: the state of a region at a pinned generation, atomically.
//
// The writer streams each block's pinned version straight from the shared memory into the file
// (no private copy of the region), coalescing runs of blocks that lie next to each other in one
// slot image into one write, and leaves all-zero blocks as holes. A delta holds only the blocks
// committed since its base, found from the blocks' tags: the client library's dirty tracking
// already recorded which blocks each commit wrote, so an idle or lightly used region costs a
// scan of its tags and a small file. The file appears under its
// final name only complete and fsynced: temp file, fsync, rename, fsync of the directory.
//
// Thread safety: one call per region at a time (the snapshot host's thread).
#pragma once

#include <cstdint>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/client/region/region_view.h"
#include "sidecar/snapshot/snapshot_format.h"

namespace modelswap::snapshot {

// The snapshot a delta builds on: the newest one this host wrote for the region.
struct DeltaBase {
  uint64_t generation = 0;
  uint64_t data_checksum = 0;
  // A full snapshot is written instead when the delta would store more than this.
  uint64_t max_stored_bytes = 0;
};

struct SnapshotWriteResult {
  uint64_t generation = 0;
  SnapshotKind kind = SnapshotKind::kFull;
  uint64_t parent_generation = 0;  // delta only
  uint64_t stored_bytes = 0;       // data bytes written (non-zero blocks)
  uint64_t file_bytes = 0;         // logical file size
  uint64_t checksum = 0;           // data checksum
  int64_t duration_ns = 0;
  std::string path;
};

// Writes the state of `view` at `pin` (a generation RegionView::Pin returned, still pinned) to
// `<region_dir>/<pin>.snap`; region_dir must exist. With a base, writes a delta holding only the
// blocks committed after base->generation (their tags say which), unless it would store more
// than base->max_stored_bytes; else a full snapshot. On any failure the temp file is removed and
// nothing else changes. kInternal if the app broke the protocol while we copied.
[[nodiscard]] Result<SnapshotWriteResult> WriteSnapshot(Env* env, const std::string& region_dir,
                                                        const RegionView& view, uint64_t pin,
                                                        const DeltaBase* base = nullptr);

}  // namespace modelswap::snapshot
