// Copies one snapshot and the files its delta chain needs into another snapshot directory, so a
// test can restore exactly that generation (RestoreRegion always takes the newest).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "sidecar/snapshot/snapshot_format.h"
#include "sidecar/snapshot/snapshot_restore.h"

namespace modelswap::testing {

inline void CopyChain(const std::string& from_dir, const std::string& to_dir,
                      const std::string& name, uint64_t gen) {
  namespace fs = std::filesystem;
  fs::create_directories(to_dir);
  for (;;) {
    const std::string file = snapshot::SnapshotFileName(gen);
    fs::copy_file(from_dir + "/" + file, to_dir + "/" + file, fs::copy_options::overwrite_existing);
    Result<snapshot::SnapshotHeader> h =
        snapshot::ReadSnapshotHeader(DefaultEnv(), from_dir + "/" + file, name, gen);
    ASSERT_TRUE(h) << h.error().ToString();
    if (h->kind == snapshot::SnapshotKind::kFull) return;
    gen = h->parent_generation;
  }
}

}  // namespace modelswap::testing
