// The app side of regions (sidecar/client/region/region.h) and the host's pin (region_view.h):
// attach, commit, rollback and roll-forward at re-attach (also after a real SIGKILL of a child
// process), single-writer locking, one test per open/validation error, and the pin protocol.
#include "sidecar/client/region/region.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "sidecar/client/region/region_view.h"
#include "tests/sidecar/snapshot/snapshot_testing.h"
#include "tests/sidecar/snapshot/test_dirs.h"

namespace modelswap {
namespace {

using snapshot::RegionView;
using testing::ScratchDir;

constexpr uint32_t kBlock = 4096;

using modelswap::testing::Read;
using modelswap::testing::Text;

class RegionTest : public ::testing::Test {
 protected:
  Region OpenOrDie(uint64_t bytes = 8 * kBlock) {
    Result<Region> r = Region::Open(shm_.path(), "state", {bytes, kBlock});
    EXPECT_TRUE(r) << r.error().ToString();
    return std::move(*r);
  }
  ScratchDir shm_{true};
};

// Move-assigning over a live region used to destroy the target's path string and then assign
// to it: a double free (caught under ASan).
TEST_F(RegionTest, MoveAssignOverALiveRegion) {
  Result<Region> a =
      Region::Open(shm_.path(), "first-region-with-a-long-name", {8 * kBlock, kBlock});
  Result<Region> b =
      Region::Open(shm_.path(), "second-region-with-a-long-name", {8 * kBlock, kBlock});
  ASSERT_TRUE(a && b);
  *a = std::move(*b);  // detaches from the first region
  ASSERT_TRUE(a->Write(0, Text("moved")));
  EXPECT_EQ(a->Commit(), 1u);
  EXPECT_TRUE(Region::Open(shm_.path(), "first-region-with-a-long-name", {8 * kBlock, kBlock}));
}

TEST_F(RegionTest, NewRegionStartsZeroAtGenerationZero) {
  Region r = OpenOrDie();
  EXPECT_TRUE(r.attach_info().created);
  EXPECT_EQ(r.generation(), 0u);
  EXPECT_EQ(r.size(), 8u * kBlock);
  for (std::byte b : r.bytes())
    ASSERT_EQ(b, std::byte{0});
}

TEST_F(RegionTest, ReattachContinuesFromLastCommit) {
  {
    Region r = OpenOrDie();
    ASSERT_TRUE(r.Write(100, Text("hello")));
    EXPECT_EQ(r.Commit(), 1u);
    ASSERT_TRUE(r.Write(3 * kBlock, Text("world")));
    EXPECT_EQ(r.Commit(), 2u);
  }
  Region r = OpenOrDie();
  EXPECT_FALSE(r.attach_info().created);
  EXPECT_EQ(r.generation(), 2u);
  EXPECT_EQ(Read(r, 100, 5), "hello");
  EXPECT_EQ(Read(r, 3 * kBlock, 5), "world");
  EXPECT_EQ(r.Commit(), 3u);
}

TEST_F(RegionTest, UncommittedWritesAreRolledBackOnReattach) {
  {
    Region r = OpenOrDie();
    ASSERT_TRUE(r.Write(10, Text("committed")));
    r.Commit();
    ASSERT_TRUE(r.Write(10, Text("XXXXXXXXX")));
    ASSERT_TRUE(r.Write(5 * kBlock, Text("never committed")));
  }  // closed without Commit(): what a crash leaves
  Region r = OpenOrDie();
  EXPECT_EQ(r.attach_info().rolled_back_blocks, 2u);
  EXPECT_EQ(r.generation(), 1u);
  EXPECT_EQ(Read(r, 10, 9), "committed");
  EXPECT_EQ(Read(r, 5 * kBlock, 15), std::string(15, '\0'));
}

TEST_F(RegionTest, InterruptedCommitIsCompletedOnReattach) {
  {
    Region r = OpenOrDie();
    ASSERT_TRUE(r.Write(0, Text("one")));
    r.Commit();
    ASSERT_TRUE(r.Write(0, Text("two")));
    ASSERT_TRUE(r.Write(4 * kBlock, Text("two")));
    ASSERT_TRUE(r.Write(7 * kBlock, Text("two")));
    testing_internal::CommitPartially(r, 1);  // one of three blocks copied, then "crash"
  }
  Region r = OpenOrDie();
  EXPECT_TRUE(r.attach_info().rolled_forward);
  EXPECT_EQ(r.generation(), 2u);
  EXPECT_EQ(Read(r, 0, 3), "two");
  EXPECT_EQ(Read(r, 4 * kBlock, 3), "two");
  EXPECT_EQ(Read(r, 7 * kBlock, 3), "two");
}

TEST_F(RegionTest, CommitCopiesOnlyDirtyBlocks) {
  Region r = OpenOrDie();
  ASSERT_TRUE(r.MarkDirty(kBlock - 1, 2));  // straddles blocks 0 and 1
  EXPECT_EQ(r.dirty_blocks(), 2u);
  r.Commit();
  EXPECT_EQ(r.dirty_blocks(), 0u);
  Result<RegionView> view = RegionView::Open(shm_.path(), "state");
  ASSERT_TRUE(view) << view.error().ToString();
  for (uint64_t b = 0; b < 8; ++b) {
    const uint64_t newest = std::max(view->Tag(b, 0), view->Tag(b, 1));
    EXPECT_EQ(newest, b < 2 ? 1u : 0u) << "block " << b;
  }
}

TEST_F(RegionTest, SecondAppIsRefusedWhileFirstIsAttached) {
  Region first = OpenOrDie();
  Result<Region> second = Region::Open(shm_.path(), "state", {8 * kBlock, kBlock});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("another live app"), std::string::npos);
}

TEST_F(RegionTest, SizeMismatchIsRefused) {
  { Region r = OpenOrDie(8 * kBlock); }
  Result<Region> r = Region::Open(shm_.path(), "state", {9 * kBlock, kBlock});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("size mismatch"), std::string::npos);
}

TEST_F(RegionTest, BlockSizeMismatchIsRefused) {
  { Region r = OpenOrDie(8 * kBlock); }
  Result<Region> r = Region::Open(shm_.path(), "state", {8 * kBlock, 2 * kBlock});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("block size mismatch"), std::string::npos);
}

TEST_F(RegionTest, BadNameIsRefused) {
  for (const char* name : {"", "../x", ".hidden", "a/b", "x y"}) {
    Result<Region> r = Region::Open(shm_.path(), name, {kBlock, kBlock});
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << name;
  }
}

TEST_F(RegionTest, ZeroSizeIsRefused) {
  Result<Region> r = Region::Open(shm_.path(), "state", {0, kBlock});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

TEST_F(RegionTest, BlockSizeNotPowerOfTwoIsRefused) {
  Result<Region> r = Region::Open(shm_.path(), "state", {kBlock, 3000});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

TEST_F(RegionTest, OutOfRangeWriteIsRefusedAndMarksNothing) {
  Region r = OpenOrDie(2 * kBlock);
  Status s = r.Write(2 * kBlock - 2, Text("abc"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.dirty_blocks(), 0u);
  EXPECT_FALSE(r.MarkDirty(UINT64_MAX, 2));
}

class RegionFileCheckTest : public RegionTest {
 protected:
  // Creates a valid region file, closes it, and returns its path.
  std::string MakeRegion() {
    { Region r = OpenOrDie(); }
    return RegionPath(shm_.path(), "state");
  }
  void Patch(const std::string& path, off_t at, const void* data, size_t n) {
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, data, n, at), static_cast<ssize_t>(n));
    ::close(fd);
  }
  Error OpenError() {
    Result<Region> r = Region::Open(shm_.path(), "state", {8 * kBlock, kBlock});
    EXPECT_FALSE(r);
    return r ? Error(Code::kOk, "") : r.error();
  }
};

TEST_F(RegionFileCheckTest, BadMagicIsCorruption) {
  const std::string path = MakeRegion();
  Patch(path, 0, "XXXXXXXX", 8);
  Error e = OpenError();
  EXPECT_EQ(e.code(), Code::kCorruption);
  EXPECT_NE(e.message().find("bad magic"), std::string::npos) << e.message();
}

TEST_F(RegionFileCheckTest, NewerLayoutVersionIsRefused) {
  const std::string path = MakeRegion();
  const uint32_t v = 99;
  Patch(path, 8, &v, 4);
  Error e = OpenError();
  EXPECT_EQ(e.code(), Code::kFailedPrecondition);
  EXPECT_NE(e.message().find("layout version 99"), std::string::npos) << e.message();
}

TEST_F(RegionFileCheckTest, InconsistentGeometryIsCorruption) {
  const std::string path = MakeRegion();
  const uint64_t bogus = 12345;
  Patch(path, 56, &bogus, 8);  // work_offset
  Error e = OpenError();
  EXPECT_EQ(e.code(), Code::kCorruption);
  EXPECT_NE(e.message().find("geometry"), std::string::npos) << e.message();
}

TEST_F(RegionFileCheckTest, TruncatedFileIsCorruption) {
  const std::string path = MakeRegion();
  ASSERT_EQ(::truncate(path.c_str(), 3 * kBlock), 0);
  Error e = OpenError();
  EXPECT_EQ(e.code(), Code::kCorruption);
  EXPECT_NE(e.message().find("truncated"), std::string::npos) << e.message();
}

TEST_F(RegionFileCheckTest, FileShorterThanHeaderIsCorruption) {
  const std::string path = MakeRegion();
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  Error e = OpenError();
  EXPECT_EQ(e.code(), Code::kCorruption);
  EXPECT_NE(e.message().find("smaller than"), std::string::npos) << e.message();
}

TEST_F(RegionFileCheckTest, CommitGenerationsTooFarApartIsCorruption) {
  const std::string path = MakeRegion();
  const uint64_t committing = 7;
  Patch(path, offsetof(ms_region_header, committing_gen), &committing, 8);
  Error e = OpenError();
  EXPECT_EQ(e.code(), Code::kCorruption);
  EXPECT_NE(e.message().find("differ by more than one"), std::string::npos) << e.message();
}

// --- the host's pin -------------------------------------------------------------------------

TEST_F(RegionTest, PinnedVersionSurvivesLaterCommits) {
  Region r = OpenOrDie();
  ASSERT_TRUE(r.Write(kBlock, Text("v1")));
  r.Commit();
  Result<RegionView> view = RegionView::Open(shm_.path(), "state");
  ASSERT_TRUE(view);
  Result<uint64_t> pin = view->Pin();
  ASSERT_TRUE(pin) << pin.error().ToString();
  EXPECT_EQ(*pin, 1u);
  for (const char* v : {"v2", "v3", "v4"}) {  // each commit after the pin rewrites block 1
    ASSERT_TRUE(r.Write(kBlock, Text(v)));
    r.Commit();
  }
  Result<RegionView::BlockVersion> at = view->PinnedVersion(1, *pin);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->tag, 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view->BlockData(1, at->slot)), 2), "v1");
  EXPECT_EQ(Read(r, kBlock, 2), "v4");
}

TEST_F(RegionTest, PinIsRefusedWhileACommitIsRunning) {
  Region r = OpenOrDie();
  ASSERT_TRUE(r.Write(0, Text("x")));
  testing_internal::CommitPartially(r, 0);
  Result<RegionView> view = RegionView::Open(shm_.path(), "state");
  ASSERT_TRUE(view);
  Result<uint64_t> pin = view->Pin();
  ASSERT_FALSE(pin);
  EXPECT_EQ(pin.error().code(), Code::kUnavailable);
}

// --- real processes -------------------------------------------------------------------------

// Runs body in a child process that then kills itself with SIGKILL; returns once it is dead.
template <class F>
void RunChildAndKill(F body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::raise(SIGKILL);
    _exit(99);  // not reached
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child failed: " << status;
}

TEST_F(RegionTest, SigkilledAppRollsBackUncommittedWrites) {
  const std::string dir = shm_.path();
  RunChildAndKill([&] {
    Result<Region> r = Region::Open(dir, "state", {8 * kBlock, kBlock});
    if (!r) _exit(1);
    (void)r->Write(0, Text("kept"));
    r->Commit();
    (void)r->Write(0, Text("lost"));
    (void)r->Write(6 * kBlock, Text("lost"));
  });
  Region r = OpenOrDie();  // also shows the dead child's flock is gone
  EXPECT_EQ(r.generation(), 1u);
  EXPECT_EQ(Read(r, 0, 4), "kept");
  EXPECT_EQ(Read(r, 6 * kBlock, 4), std::string(4, '\0'));
  EXPECT_EQ(r.attach_info().rolled_back_blocks, 2u);
}

TEST_F(RegionTest, SigkilledAppInTheMiddleOfACommitIsRolledForward) {
  const std::string dir = shm_.path();
  RunChildAndKill([&] {
    Result<Region> r = Region::Open(dir, "state", {8 * kBlock, kBlock});
    if (!r) _exit(1);
    (void)r->Write(0, Text("old"));
    r->Commit();
    (void)r->Write(0, Text("new"));
    (void)r->Write(2 * kBlock, Text("new"));
    testing_internal::CommitPartially(*r, 1);
  });
  Region r = OpenOrDie();
  EXPECT_TRUE(r.attach_info().rolled_forward);
  EXPECT_EQ(r.generation(), 2u);
  EXPECT_EQ(Read(r, 0, 3), "new");
  EXPECT_EQ(Read(r, 2 * kBlock, 3), "new");
}

}  // namespace
}  // namespace modelswap
