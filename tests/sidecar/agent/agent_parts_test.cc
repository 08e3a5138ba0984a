// The agent's smaller parts in-process: reclaim decisions, the watcher, the control block
// writer (create, adopt, single-agent lock, replacing an invalid file), status JSON.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "sidecar/agent/control_block_writer.h"
#include "sidecar/agent/reclaimer.h"
#include "sidecar/agent/status_json.h"
#include "sidecar/agent/watcher.h"
#include "tests/sidecar/agent/process_util.h"

namespace modelswap::agent {
namespace {

using modelswap::testing::TempDir;

ctl::SlotView Slot(uint64_t min, uint64_t max) {
  ctl::SlotView s;
  s.owner = 1;
  s.heartbeat_ns = 100;
  s.min_generation = min;
  s.max_generation = max;
  return s;
}

LoadedVersion Retired(uint64_t generation, int64_t retired_at) {
  LoadedVersion v;
  v.manifest.generation = generation;
  v.retired_at_ns = retired_at;
  return v;
}

TEST(ReclaimerTest, KeepsAVersionALiveSlotHolds) {
  EXPECT_EQ(ReclaimReason(Retired(3, 0), {Slot(3, 4)}, 10, 100), "");
  EXPECT_EQ(ReclaimReason(Retired(3, 0), {Slot(2, 5)}, 10, 100), "");
}

TEST(ReclaimerTest, DropsAVersionNoSlotHolds) {
  EXPECT_EQ(ReclaimReason(Retired(3, 0), {Slot(4, 4)}, 10, 100), "no live reader holds it");
  EXPECT_EQ(ReclaimReason(Retired(3, 0), {Slot(0, 0)}, 10, 100), "no live reader holds it");
  EXPECT_EQ(ReclaimReason(Retired(3, 0), {}, 10, 100), "no live reader holds it");
}

TEST(ReclaimerTest, ASlotWideningToZeroHoldsEverythingUpToMax) {
  // [0, max] is what a reader that is clearing its range shows for a moment.
  EXPECT_EQ(ReclaimReason(Retired(3, 0), {Slot(0, 5)}, 10, 100), "");
}

TEST(ReclaimerTest, DropsAfterTheGracePeriodEvenIfHeld) {
  EXPECT_EQ(ReclaimReason(Retired(3, 0), {Slot(3, 3)}, 100, 100), "grace period over");
}

TEST(SlotViewTest, LivenessIsByHeartbeat) {
  ctl::SlotView s = Slot(1, 1);
  EXPECT_TRUE(s.Live(150, 100));
  EXPECT_FALSE(s.Live(201, 100));
  s.owner = 0;
  EXPECT_FALSE(s.Live(150, 100));
}

TEST(WatcherTest, ReportsAReplacedManifest) {
  TempDir dir;
  Watcher w(dir.path(), "manifest.json");
  ASSERT_TRUE(w.watching());
  std::ofstream(dir / "manifest.json.tmp") << "{}";
  std::filesystem::rename(dir / "manifest.json.tmp", dir / "manifest.json");
  EXPECT_EQ(w.Wait(20'000'000'000), Watcher::Reason::kEvent);
}

TEST(WatcherTest, TimesOutWithoutChanges) {
  TempDir dir;
  Watcher w(dir.path(), "manifest.json");
  EXPECT_EQ(w.Wait(1'000'000), Watcher::Reason::kTimeout);
}

TEST(WatcherTest, WakeEndsAWait) {
  TempDir dir;
  Watcher w(dir.path(), "manifest.json");
  w.Wake();
  EXPECT_EQ(w.Wait(20'000'000'000), Watcher::Reason::kWoken);
}

TEST(WatcherTest, WatchesADirectoryCreatedLater) {
  TempDir dir;
  Watcher w(dir / "later", "manifest.json");
  EXPECT_FALSE(w.watching());
  std::filesystem::create_directories(dir / "later");
  EXPECT_EQ(w.Wait(1'000'000), Watcher::Reason::kTimeout);  // adds the watch
  EXPECT_TRUE(w.watching());
}

TEST(ControlBlockWriterTest, CreatesThenAdoptsAndPublishes) {
  TempDir dir;
  ControlBlockOptions o{dir / "shm", "m"};
  {
    auto w = ControlBlockWriter::OpenOrCreate(DefaultEnv(), o);
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    EXPECT_FALSE((*w)->adopted());
    EXPECT_EQ((*w)->incarnation(), 1u);
    (*w)->Publish(ctl::Record{0, 7, 100, 42, MS_CTL_STATE_ACTIVE, 1, "v7", "/x/v7.msf", {}});
  }
  auto w = ControlBlockWriter::OpenOrCreate(DefaultEnv(), o);
  ASSERT_TRUE(w.has_value());
  EXPECT_TRUE((*w)->adopted());
  EXPECT_EQ((*w)->incarnation(), 2u);
  auto rec = (*w)->Current();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->generation, 7u);
  EXPECT_EQ(rec->version, "v7");
  EXPECT_EQ(rec->path, "/x/v7.msf");
  EXPECT_EQ(rec->state, MS_CTL_STATE_ACTIVE);
}

// Apps in other containers often run as other users: they must be able to open the control
// block read-write to claim a reader slot.
TEST(ControlBlockWriterTest, ControlBlockIsWritableByAppsOfOtherUsers) {
  TempDir dir;
  auto w = ControlBlockWriter::OpenOrCreate(DefaultEnv(), ControlBlockOptions{dir / "shm", "m"});
  ASSERT_TRUE(w.has_value()) << w.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat((dir / "shm/m.ctl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
}

TEST(ControlBlockWriterTest, ASecondAgentIsRefused) {
  TempDir dir;
  ControlBlockOptions o{dir / "shm", "m"};
  auto first = ControlBlockWriter::OpenOrCreate(DefaultEnv(), o);
  ASSERT_TRUE(first.has_value());
  auto second = ControlBlockWriter::OpenOrCreate(DefaultEnv(), o);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
}

TEST(ControlBlockWriterTest, ReplacesAFileThatIsNotAControlBlock) {
  TempDir dir;
  std::filesystem::create_directories(dir / "shm");
  std::ofstream(dir / "shm/m.ctl") << "garbage";
  auto w = ControlBlockWriter::OpenOrCreate(DefaultEnv(), ControlBlockOptions{dir / "shm", "m"});
  ASSERT_TRUE(w.has_value()) << w.error().ToString();
  EXPECT_FALSE((*w)->adopted());
  EXPECT_EQ(std::filesystem::file_size(dir / "shm/m.ctl"), MS_CTL_FILE_BYTES);
}

TEST(StatusJsonTest, FollowsTheContract) {
  ModelStatus s;
  s.model = "m";
  s.state = "loading";
  s.last_rejected = Rejection{"v2", 2, "Corruption: bad", 0};
  auto j = StatusJson({s});
  EXPECT_EQ(j["ready"], false);
  EXPECT_TRUE(j["models"]["m"]["active"].is_null());
  EXPECT_EQ(j["models"]["m"]["state"], "loading");
  EXPECT_EQ(j["models"]["m"]["last_rejected"]["reason"], "Corruption: bad");
  EXPECT_EQ(j["models"]["m"]["last_rejected"]["generation"], 2);
  for (const char* key : {"resident_bytes", "swaps"})
    EXPECT_TRUE(j["models"]["m"].contains(key));
}

}  // namespace
}  // namespace modelswap::agent
