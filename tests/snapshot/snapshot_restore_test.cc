// The restore's I/O paths under a filesystem that lacks what the fast path uses: no kernel copy
// between the two files (each chunk then goes through a user buffer), no hole reporting (holes
// are then copied as zeros), and a snapshot that cannot be read (skipped for an older one).
#include "sidecar/snapshot/snapshot_restore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>
#include <string>

#include "sidecar/client/region.h"
#include "sidecar/snapshot/snapshot_host.h"
#include "tests/snapshot/snapshot_testing.h"
#include "tests/snapshot/test_dirs.h"

namespace modelswap::snapshot {
namespace {

using modelswap::testing::Read;
using modelswap::testing::ScratchDir;
using modelswap::testing::Text;

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBytes = 64 * kBlock;

// An Env whose CopyRange is refused, whose NextData reports no holes, or whose reads of one
// snapshot file fail, as configured.
class LimitedEnv : public EnvWrapper {
 public:
  LimitedEnv() : EnvWrapper(DefaultEnv()) {}
  bool no_copy = false, no_holes = false;
  std::string unreadable;  // path suffix whose reads fail
  int copies = 0, buffered_reads = 0;

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
    ++buffered_reads;
    return EnvWrapper::PRead(fd, out, offset);
  }
  Status CopyRange(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t n) override {
    ++copies;
    if (no_copy) return Fail(Code::kNotSupported, "sendfile: not supported (injected)");
    return EnvWrapper::CopyRange(in, in_off, out, out_off, n);
  }
  Result<std::pair<uint64_t, uint64_t>> NextData(int fd, uint64_t offset) override {
    if (!no_holes) return EnvWrapper::NextData(fd, offset);
    struct stat st {};
    ::fstat(fd, &st);
    return std::pair{offset, static_cast<uint64_t>(st.st_size)};
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

TEST_F(SnapshotRestoreTest, RefusedKernelCopyFallsBackToABufferedCopy) {
  LimitedEnv env;
  env.no_copy = true;
  Region r = Restored(&env, 2);
  EXPECT_GT(env.copies, 0);
  EXPECT_EQ(Read(r, 3 * kBlock, 5), "THREE");
  EXPECT_EQ(Read(r, 40 * kBlock, 5), "forty");
  EXPECT_EQ(Read(r, 41 * kBlock, 5), std::string(5, '\0'));
}

TEST_F(SnapshotRestoreTest, NoHoleReportingStillRestoresExactly) {
  LimitedEnv env;
  env.no_holes = true;
  Region r = Restored(&env, 2);
  EXPECT_EQ(Read(r, 3 * kBlock, 5), "THREE");
  EXPECT_EQ(Read(r, 40 * kBlock, 5), "forty");
  EXPECT_EQ(Read(r, 20 * kBlock, 5), std::string(5, '\0'));
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
