// Restoring a region from its newest valid snapshot, and verifying snapshot files.
//
// Restore builds the whole region under no name (region_file.h), reading the snapshot in chunks
// that are hashed and copied in one pass, and links it into place only if the data checksum
// matches. A delta is restored through its chain (snapshot_format.h): the full snapshot it ends
// at, then every delta up to it, each file checked, each link checked against the next. A snapshot
// that fails any check (or cannot be read) is skipped with a log line and the next older one is
// tried: the caller counts those fallbacks.
//
// Thread safety: stateless functions; restore one region from one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/snapshot/snapshot_format.h"

namespace modelswap::snapshot {

struct RestoreResult {
  uint64_t generation = 0;           // generation restored
  uint64_t fallbacks = 0;            // newer snapshots skipped because they failed a check
  std::vector<std::string> skipped;  // why each was skipped, newest first
  uint64_t region_bytes = 0;
  uint64_t chain_length = 0;  // files applied: 1 for a full snapshot, more for a delta chain
  int64_t duration_ns = 0;
  std::string path;  // the snapshot restored
};

// Generations of the snapshots in region_dir, newest first (temp files and strangers ignored).
// An absent directory is an empty list.
[[nodiscard]] Result<std::vector<uint64_t>> ListSnapshotGenerations(Env* env,
                                                                    const std::string& region_dir);

// Restores `<shm_dir>/regions/<name>.region` from the newest snapshot in
// `<snapshot_dir>/<name>/` that passes every check (its whole chain, for a delta). Errors:
// kAlreadyExists if the region exists (it has live content: nothing is changed); kNotFound if there
// is no snapshot; kCorruption if none is valid (each reason is in the message and the log); others
// from creating the region.
[[nodiscard]] Result<RestoreResult> RestoreRegion(Env* env, const std::string& snapshot_dir,
                                                  const std::string& shm_dir,
                                                  const std::string& name);

// Reads and checks a snapshot file's header (and its size), not its data.
[[nodiscard]] Result<SnapshotHeader> ReadSnapshotHeader(Env* env, const std::string& path,
                                                        const std::string& name,
                                                        uint64_t generation);

// Reads a snapshot file completely and checks it (header, size, data checksum). For a delta
// that is the file alone, not its chain.
[[nodiscard]] Result<SnapshotHeader> VerifySnapshotFile(Env* env, const std::string& path,
                                                        const std::string& name,
                                                        uint64_t generation);

}  // namespace modelswap::snapshot
