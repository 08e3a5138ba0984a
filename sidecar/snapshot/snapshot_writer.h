// Writing one snapshot file: the state of a region at a pinned generation, atomically.
//
// The writer streams each block's pinned version straight from the shared memory into the file
// (no private copy of the region), coalescing runs of blocks that lie next to each other in one
// slot image into one write, and leaves all-zero blocks as holes. The file appears under its
// final name only complete and fsynced: temp file, fsync, rename, fsync of the directory.
//
// Thread safety: one call per region at a time (the snapshot host's thread).
#pragma once

#include <cstdint>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/snapshot/region_view.h"

namespace modelswap::snapshot {

struct SnapshotWriteResult {
  uint64_t generation = 0;
  uint64_t stored_bytes = 0;  // data bytes written (non-zero blocks)
  uint64_t file_bytes = 0;    // logical file size (header + region)
  uint64_t checksum = 0;      // data checksum
  int64_t duration_ns = 0;
  std::string path;
};

// Writes the state of `view` at `pin` (a generation RegionView::Pin returned, still pinned) to
// `<region_dir>/<pin>.snap`; region_dir must exist. On any failure the temp file is removed and
// nothing else changes. kInternal if the app broke the protocol while we copied.
[[nodiscard]] Result<SnapshotWriteResult> WriteSnapshot(Env* env, const std::string& region_dir,
                                                        const RegionView& view, uint64_t pin);

}  // namespace modelswap::snapshot
