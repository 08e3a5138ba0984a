// Multi-process hot swap under load: 50 versions published while three C++ reader processes and
// one Python reader look keys up continuously. Every value must belong to the version of the
// handle it was read through, every reader must reach the last version, and the agent must
// unmap every superseded version once readers have moved on.
#include <fstream>
#include <set>

#include "tests/sidecar/agent/reader_processes.h"

namespace modelswap::testing {
namespace {

constexpr int kVersions = 50;

TEST_F(AgentFixture, HotSwapUnderLoadHasNoTornReadsAndReclaimsOldVersions) {
  Publish("v0");
  StartAgent({"--grace-period", "600000"});
  ASSERT_TRUE(WaitActive(1));
  std::string last = "v" + std::to_string(kVersions);
  const Readers readers = StartReaders(dir_, shm_, 3, last);
  // Readers are reading v0 before the first swap.
  ASSERT_TRUE(WaitReading(readers));
  for (int v = 1; v <= kVersions; ++v) {
    Publish("v" + std::to_string(v));
    // Each version is really swapped in, not skipped: wait for the agent before the next.
    ASSERT_TRUE(WaitActive(static_cast<uint64_t>(v) + 1));
  }
  ASSERT_NO_FATAL_FAILURE(ExpectReadersFinished(readers, last));
  // Readers are gone: every superseded version is unmapped, only the last one stays.
  std::string last_file = VersionFile(last);
  EXPECT_TRUE(WaitOnlyMapped(last_file));
  // Their pages were dropped from the page cache too (POSIX_FADV_DONTNEED): mincore through a
  // fresh mapping (which faults nothing in) finds none of a few old versions resident.
  for (const char* old : {"v0", "v1", "v25", "v49"}) {
    auto map = DefaultEnv()->MapReadOnly(VersionFile(old));
    ASSERT_TRUE(map.has_value());
    EXPECT_TRUE(PollUntil([&] { return DefaultEnv()->ResidentBytes((*map)->bytes()) == 0u; }))
        << old << " still has " << *DefaultEnv()->ResidentBytes((*map)->bytes()) << " bytes cached";
  }
  auto m = ModelStatus();
  EXPECT_EQ(m["swaps"], kVersions + 1);
  EXPECT_EQ(m["reclaimed"], kVersions);
  EXPECT_EQ(m["rejections"], 0);
}

}  // namespace
}  // namespace modelswap::testing
