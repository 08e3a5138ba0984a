// A region the host restored keeps each block's committed version in the work image only (slot 0
// is filled when the app first writes the block: region_layout.h, "in work" and step W1). These
// tests check every reader of that version: the app's rollback and commit, the host's snapshot
// (including its re-check when the app writes a block while the host copies it), and the
// restore's memory cost.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "sidecar/client/region/region.h"
#include "sidecar/client/region/region_view.h"
#include "sidecar/snapshot/snapshot_format.h"
#include "sidecar/snapshot/snapshot_host.h"
#include "sidecar/snapshot/snapshot_restore.h"
#include "tests/sidecar/snapshot/snapshot_testing.h"
#include "tests/sidecar/snapshot/state_check.h"
#include "tests/sidecar/snapshot/test_dirs.h"

namespace modelswap::snapshot {
namespace {

using modelswap::testing::ScratchDir;
using modelswap::testing::StateChecker;
namespace fs = std::filesystem;

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBlocks = 64;
constexpr uint64_t kBytes = kBlocks * kBlock;

using modelswap::testing::Read;
using modelswap::testing::Text;

class RestoredRegionTest : public ::testing::Test {
 protected:
  SnapshotHostOptions Options(const std::string& shm) {
    SnapshotHostOptions o;
    o.shm_dir = shm;
    o.snapshot_dir = snaps_.path();
    o.interval_ms = 3'600'000;  // passes are driven with RunOnce()
    o.keep = 1000;
    return o;
  }
  Region Open(const std::string& shm) {
    Result<Region> r = Region::Open(shm, "state", {kBytes, kBlock});
    EXPECT_TRUE(r) << r.error().ToString();
    return std::move(*r);
  }
  // Writes "block<b>" into every block of a region in shm_, commits, snapshots, and restores it
  // into `into`.
  void MakeRestored(const std::string& into) {
    {
      SnapshotHost host(DefaultEnv(), Options(shm_.path()));
      Region r = Open(shm_.path());
      for (uint64_t b = 0; b < kBlocks; ++b)
        ASSERT_TRUE(r.Write(b * kBlock, Text("block" + std::to_string(b))));
      r.Commit();
      ASSERT_TRUE(host.RunOnce());
    }
    Result<RestoreResult> rr = RestoreRegion(DefaultEnv(), snaps_.path(), into, "state");
    ASSERT_TRUE(rr) << rr.error().ToString();
  }

  ScratchDir shm_{true}, shm2_{true}, snaps_{false};
};

TEST_F(RestoredRegionTest, RestoreFillsOnlyTheWorkImage) {
  MakeRestored(shm2_.path());
  Result<RegionView> view = RegionView::Open(shm2_.path(), "state");
  ASSERT_TRUE(view) << view.error().ToString();
  for (uint64_t b = 0; b < kBlocks; ++b) {
    Result<RegionView::BlockVersion> v = view->PinnedVersion(b, 1);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->in_work) << "block " << b;
    EXPECT_EQ(v->tag, 1u);
  }
  // Slot 0 and 1 were never written: tmpfs holds the header, tags and work image only.
  struct stat st {};
  ASSERT_EQ(::stat(RegionPath(shm2_.path(), "state").c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kBytes + 64 * 1024);
}

TEST_F(RestoredRegionTest, UncommittedWriteToARestoredBlockIsRolledBack) {
  MakeRestored(shm2_.path());
  {
    Region r = Open(shm2_.path());
    ASSERT_TRUE(r.Write(7 * kBlock, Text("scribble")));
    ASSERT_TRUE(r.Write(8 * kBlock, Text("scribble")));
  }  // the app dies without committing
  Region r = Open(shm2_.path());
  EXPECT_EQ(r.attach_info().rolled_back_blocks, 2u);
  EXPECT_EQ(Read(r, 7 * kBlock, 6), "block7");
  EXPECT_EQ(Read(r, 8 * kBlock, 6), "block8");
  EXPECT_EQ(Read(r, 9 * kBlock, 6), "block9");
}

TEST_F(RestoredRegionTest, CommitsAfterRestoreSnapshotAndRestoreAgain) {
  MakeRestored(shm2_.path());
  SnapshotHost host(DefaultEnv(), Options(shm2_.path()));
  Region r = Open(shm2_.path());
  ASSERT_TRUE(r.Write(3 * kBlock, Text("three")));
  EXPECT_EQ(r.Commit(), 2u);
  ASSERT_TRUE(host.RunOnce());
  EXPECT_EQ(r.durable_generation(), 2u);

  ScratchDir shm3(true);
  Result<RestoreResult> rr = RestoreRegion(DefaultEnv(), snaps_.path(), shm3.path(), "state");
  ASSERT_TRUE(rr) << rr.error().ToString();
  EXPECT_EQ(rr->generation, 2u);
  Region again = Open(shm3.path());
  EXPECT_EQ(Read(again, 3 * kBlock, 6), std::string("three") + '3');  // "block3" overwritten
  for (uint64_t b : {0u, 2u, 4u, 63u})
    EXPECT_EQ(Read(again, b * kBlock, 5), "block") << b;
}

// The host's re-check: a block the app moved out of the work image between the host's tag load
// and its copy is read from slot 0, which holds the pinned version, not the app's new bytes.
TEST_F(RestoredRegionTest, HostReadsSlotZeroOnceTheAppMovedTheBlock) {
  MakeRestored(shm2_.path());
  Result<RegionView> view = RegionView::Open(shm2_.path(), "state");
  ASSERT_TRUE(view);
  Region r = Open(shm2_.path());
  std::vector<std::byte> out(kBlock);

  Result<RegionView::BlockVersion> v = view->PinnedVersion(5, 1);
  ASSERT_TRUE(v && v->in_work);
  const std::byte* got = view->ReadInWork(5, out.data());
  EXPECT_EQ(got, out.data()) << "untouched block: the copy of the work image stands";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got), 6), "block5");

  ASSERT_TRUE(r.Write(5 * kBlock, Text("NEWBYTES")));  // W1 runs, then the app writes
  got = view->ReadInWork(5, out.data());
  EXPECT_NE(got, out.data()) << "the re-check must notice the block moved";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got), 6), "block5");
}

// The same race, hammered: an app thread overwrites every block of a freshly restored region with
// new bytes while a host thread keeps reading the pinned versions. Each read must be exactly the
// restored block, never the app's bytes or a mix.
TEST_F(RestoredRegionTest, HostNeverSeesTheAppsNewBytesInARestoredBlock) {
  const std::vector<std::byte> old_bytes(kBlock, std::byte{0xa5}),
      new_bytes(kBlock, std::byte{0x5a});
  {
    SnapshotHost host(DefaultEnv(), Options(shm_.path()));
    Region r = Open(shm_.path());
    for (uint64_t b = 0; b < kBlocks; ++b)
      ASSERT_TRUE(r.Write(b * kBlock, old_bytes));
    r.Commit();
    ASSERT_TRUE(host.RunOnce());
  }
  uint64_t moved_while_read = 0;
  for (int round = 0; round < 300; ++round) {
    ScratchDir shm(true);
    ASSERT_TRUE(RestoreRegion(DefaultEnv(), snaps_.path(), shm.path(), "state"));
    Result<RegionView> view = RegionView::Open(shm.path(), "state");
    ASSERT_TRUE(view);
    Region r = Open(shm.path());
    std::atomic<bool> done{false};
    std::thread app([&] {
      for (uint64_t b = 0; b < kBlocks; ++b)
        (void)r.Write(b * kBlock, new_bytes);
      done.store(true, std::memory_order_release);  // pairs with the host loop's acquire
    });
    std::vector<std::byte> out(kBlock);
    while (!done.load(std::memory_order_acquire)) {
      for (uint64_t b = 0; b < kBlocks; ++b) {
        Result<RegionView::BlockVersion> v = view->PinnedVersion(b, 1);
        ASSERT_TRUE(v);
        const std::byte* got = v->in_work ? view->ReadInWork(b, out.data()) : view->BlockData(b, 0);
        moved_while_read += v->in_work && got != out.data();
        ASSERT_EQ(std::memcmp(got, old_bytes.data(), kBlock), 0)
            << "round " << round << " block " << b << ": the host saw the app's new bytes";
      }
    }
    app.join();
  }
  std::printf("blocks moved by the app while the host read them: %llu\n",
              static_cast<unsigned long long>(moved_while_read));
}

// Many restored regions, each with an app thread rewriting blocks (so every block leaves the work
// image while the host may be copying it) and the host snapshotting as fast as it can: every
// snapshot restores to exactly one committed state.
TEST_F(RestoredRegionTest, EverySnapshotOfARestoredRegionIsOneCommittedState) {
  {  // A self-checking state in every page, as the base all rounds restore.
    SnapshotHost host(DefaultEnv(), Options(shm_.path()));
    Region r = Open(shm_.path());
    StateChecker state(r.bytes(), kBlock);
    std::mt19937_64 rng(11);
    while (r.generation() < 2000) {
      state.Update(r, rng);
      r.Commit();
    }
    ASSERT_TRUE(host.RunOnce());
  }
  const std::string base = snaps_ / ("state/" + SnapshotFileName(2000));
  for (int round = 0; round < 20; ++round) {
    ScratchDir shm(true), snaps(false);
    fs::create_directories(snaps / "state");
    fs::copy_file(base, snaps / ("state/" + SnapshotFileName(2000)));
    ASSERT_TRUE(RestoreRegion(DefaultEnv(), snaps.path(), shm.path(), "state"));
    std::vector<uint64_t> durable;
    SnapshotHostOptions o = Options(shm.path());
    o.snapshot_dir = snaps.path();
    o.on_durable = [&](const std::string&, uint64_t gen) { durable.push_back(gen); };
    SnapshotHost host(DefaultEnv(), o);
    Region r = Open(shm.path());
    modelswap::testing::CommitWhileSnapshotting(host, r, 300, kBlock, static_cast<uint64_t>(round));
    ASSERT_EQ(durable.back(), 2300u);
    modelswap::testing::ExpectEachRestoresExactly(snaps / "state", durable, {kBytes, kBlock});
  }
}

}  // namespace
}  // namespace modelswap::snapshot
