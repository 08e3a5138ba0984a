// Helpers shared by the snapshot tests: text in and out of a region, restoring one exact
// generation (a snapshot and the files its delta chain needs), and the "app commits while the
// host snapshots" loop whose every durable generation must restore to exactly one committed state.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/client/region/region.h"
#include "sidecar/snapshot/snapshot_format.h"
#include "sidecar/snapshot/snapshot_host.h"
#include "sidecar/snapshot/snapshot_restore.h"
#include "tests/sidecar/snapshot/state_check.h"
#include "tests/sidecar/snapshot/test_dirs.h"

namespace modelswap::testing {

inline std::span<const std::byte> Text(const std::string& s) {
  return std::as_bytes(std::span(s));
}

inline std::string Read(const Region& r, uint64_t off, size_t n) {
  return std::string(reinterpret_cast<const char*>(r.bytes().data() + off), n);
}

// Copies snapshot `gen` of region `name` and every file its chain needs from one region snapshot
// directory to another, so RestoreRegion (which takes the newest) restores exactly `gen`.
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

// An app thread applies `commits` StateChecker updates, committing each, while this thread runs
// host passes as fast as it can; then one last pass.
inline void CommitWhileSnapshotting(snapshot::SnapshotHost& host, Region& region, int commits,
                                    uint64_t block_bytes, uint64_t seed) {
  std::atomic<bool> done{false};
  std::thread app([&] {
    StateChecker state(region.bytes(), block_bytes);
    std::mt19937_64 rng(seed);
    for (int i = 0; i < commits; ++i) {
      state.Update(region, rng);
      region.Commit();
    }
    done.store(true, std::memory_order_release);  // pairs with the loop's acquire
  });
  while (!done.load(std::memory_order_acquire))
    ASSERT_TRUE(host.RunOnce());
  app.join();
  ASSERT_TRUE(host.RunOnce());
}

// Restores each generation of region "state" from `snapshot_region_dir` on its own and checks it
// is exactly that committed state.
inline void ExpectEachRestoresExactly(const std::string& snapshot_region_dir,
                                      const std::vector<uint64_t>& generations,
                                      const RegionOptions& options) {
  for (const uint64_t gen : generations) {
    ScratchDir fresh(true), one(false);
    CopyChain(snapshot_region_dir, one / "state", "state", gen);
    Result<snapshot::RestoreResult> rr =
        snapshot::RestoreRegion(DefaultEnv(), one.path(), fresh.path(), "state");
    ASSERT_TRUE(rr) << rr.error().ToString();
    Result<Region> restored = Region::Open(fresh.path(), "state", options);
    ASSERT_TRUE(restored) << restored.error().ToString();
    Result<uint64_t> got =
        StateChecker(restored->bytes(), options.block_bytes).Verify(restored->generation());
    ASSERT_TRUE(got) << "generation " << gen << ": " << got.error().message();
    EXPECT_EQ(*got, gen);
  }
}

}  // namespace modelswap::testing
