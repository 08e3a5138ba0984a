// The restore's read pipeline (chunk_pipeline.h) under a difficult filesystem: reads that return
// a few bytes at a time, a snapshot that cannot be read (skipped for an older one), one that ends
// early; and a sparse state restored sparse (zero blocks are holes in the region too).
#include "sidecar/snapshot/snapshot_restore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <string>

#include "sidecar/client/region/region.h"
#include "sidecar/snapshot/snapshot_host.h"
#include "tests/sidecar/snapshot/snapshot_testing.h"
#include "tests/sidecar/snapshot/test_dirs.h"

namespace modelswap::snapshot {
namespace {

using modelswap::testing::Read;
using modelswap::testing::ScratchDir;
using modelswap::testing::Text;
namespace fs = std::filesystem;

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBytes = 64 * kBlock;

// An Env whose reads return at most short_reads bytes (0 = no limit), and whose reads of one
// snapshot file fail.
class LimitedEnv : public EnvWrapper {
 public:
  LimitedEnv() : EnvWrapper(DefaultEnv()) {}
  size_t short_reads = 0;
  std::string unreadable;  // path suffix whose reads fail

  Result<int> Open(const std::string& path, OpenMode mode) override {
    Result<int> fd = EnvWrapper::Open(path, mode);
    if (fd && !unreadable.empty() && path.ends_with(unreadable)) bad_.insert(*fd);
    return fd;
  }
  void Close(int fd) override {
    bad_.erase(fd);  // the number will be reused
    EnvWrapper::Close(fd);
  }
  Result<size_t> PRead(int fd, std::span<std::byte> out, uint64_t offset) override {
    if (bad_.contains(fd)) return Fail(Code::kIOError, "pread: Input/output error (injected)");
    if (short_reads != 0 && out.size() > short_reads) out = out.first(short_reads);
    return EnvWrapper::PRead(fd, out, offset);
  }

 private:
  std::set<int> bad_;
};

class SnapshotRestoreTest : public ::testing::Test {
 protected:
  // Generation 1 (full): blocks 3 and 40 written, the rest holes; generation 2 (a delta).
  void SetUp() override {
    SnapshotHostOptions o;
    o.shm_dir = shm_.path();
    o.snapshot_dir = snaps_.path();
    o.interval_ms = 3'600'000;
    SnapshotHost host(DefaultEnv(), o);
    Result<Region> r = Region::Open(shm_.path(), "state", {kBytes, kBlock});
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->Write(3 * kBlock, Text("three")));
    ASSERT_TRUE(r->Write(40 * kBlock, Text("forty")));
    r->Commit();
    ASSERT_TRUE(host.RunOnce());
    ASSERT_TRUE(r->Write(3 * kBlock, Text("THREE")));
    r->Commit();
    ASSERT_TRUE(host.RunOnce());
  }
  Region Restored(Env* env, uint64_t want_gen) {
    Result<RestoreResult> rr = RestoreRegion(env, snaps_.path(), fresh_.path(), "state");
    EXPECT_TRUE(rr) << rr.error().ToString();
    EXPECT_EQ(rr->generation, want_gen);
    Result<Region> r = Region::Open(fresh_.path(), "state", {kBytes, kBlock});
    EXPECT_TRUE(r) << r.error().ToString();
    return std::move(*r);
  }

  ScratchDir shm_{true}, fresh_{true}, snaps_{false};
};

TEST_F(SnapshotRestoreTest, ShortReadsStillRestoreExactly) {
  LimitedEnv env;
  env.short_reads = 1000;  // not a divisor of anything the pipeline asks for
  Region r = Restored(&env, 2);
  EXPECT_EQ(Read(r, 3 * kBlock, 5), "THREE");
  EXPECT_EQ(Read(r, 40 * kBlock, 5), "forty");
  EXPECT_EQ(Read(r, 41 * kBlock, 5), std::string(5, '\0'));
}

TEST_F(SnapshotRestoreTest, SparseStateStaysSparseInMemory) {
  Region r = Restored(DefaultEnv(), 2);
  struct stat st {};
  ASSERT_EQ(::stat(r.path().c_str(), &st), 0);
  // Header, tags and dirty pages, and the two written blocks: far less than the 64-block image.
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, 4 * 4096 + 2 * kBlock);
}

TEST_F(SnapshotRestoreTest, TruncatedFullSnapshotUnderADeltaFailsTheChain) {
  fs::resize_file(snaps_ / ("state/" + SnapshotFileName(1)), kSnapshotHeaderBytes + kBytes - 1);
  Result<RestoreResult> rr = RestoreRegion(DefaultEnv(), snaps_.path(), fresh_.path(), "state");
  ASSERT_FALSE(rr);
  EXPECT_NE(rr.error().message().find("truncated"), std::string::npos) << rr.error().message();
  EXPECT_FALSE(fs::exists(RegionPath(fresh_.path(), "state")));
}

TEST_F(SnapshotRestoreTest, UnreadableNewestSnapshotIsSkippedForTheOlderOne) {
  LimitedEnv env;
  env.unreadable = SnapshotFileName(2);
  Result<RestoreResult> rr = RestoreRegion(&env, snaps_.path(), fresh_.path(), "state");
  ASSERT_TRUE(rr) << rr.error().ToString();
  EXPECT_EQ(rr->generation, 1u);
  EXPECT_EQ(rr->fallbacks, 1u);
  ASSERT_EQ(rr->skipped.size(), 1u);
  EXPECT_NE(rr->skipped[0].find("Input/output error"), std::string::npos) << rr->skipped[0];
  Result<Region> r = Region::Open(fresh_.path(), "state", {kBytes, kBlock});
  ASSERT_TRUE(r);
  EXPECT_EQ(Read(*r, 3 * kBlock, 5), "three");
}

}  // namespace
}  // namespace modelswap::snapshot
