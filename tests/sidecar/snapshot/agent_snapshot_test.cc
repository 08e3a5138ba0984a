// The snapshot host inside the real agent process: an app's committed region state is persisted,
// and after a "pod restart" (agent killed, shm dir wiped) the new agent restores it before its
// /readyz answers, so an app starting after readiness finds its state.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <regex>

#include "common/names.h"
#include "sidecar/volume/manifest.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/process_util.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace modelswap {
namespace {

using namespace std::chrono_literals;

class AgentSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto d : {root_, shm_, snaps_})
      std::filesystem::create_directories(d);
    auto w = WriteVersion(DefaultEnv(), {root_, "m", "v1", GenerateSource{50'000, 1, 100}, false});
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    ASSERT_TRUE(PublishVersion(DefaultEnv(), root_, "m", "v1").has_value());
  }
  void TearDown() override {
    if (agent_ > 0) testing::KillAndReap(agent_);
  }
  void StartAgent() {
    port_ = testing::FreePort();
    agent_ = testing::Spawn(
        {MODELSWAP_SIDECAR_BIN, "agent", "--root", root_, "--models", "m", "--shm-dir", shm_,
         "--listen", "127.0.0.1:" + std::to_string(port_), "--poll-interval", "50",
         "--snapshot-dir", snaps_, "--snapshot-interval", "50", "--log-level", "info"},
        dir_ / "agent.log");
    ASSERT_GT(agent_, 0);
  }
  bool Ready() { return testing::HttpGet(port_, "/readyz").status == 200; }
  // Runs the test app for `commits` commits; returns its output lines.
  std::string RunApp(int commits) {
    auto r = testing::Run({SNAPSHOT_APP_BIN, shm_, "state", "8", std::to_string(commits)});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r.out;
  }

  testing::TempDir dir_;
  std::string root_ = dir_ / "volume", shm_ = dir_ / "shm", snaps_ = dir_ / "snapshots";
  pid_t agent_ = -1;
  int port_ = 0;
};

TEST_F(AgentSnapshotTest, PodRestartRestoresTheLastDurableCommitBeforeReady) {
  StartAgent();
  ASSERT_TRUE(testing::PollUntil([&] { return Ready(); }, 30s)) << "agent never ready";
  std::string out = RunApp(25);
  ASSERT_NE(out.find("done gen=25"), std::string::npos) << out;
  uint64_t durable = 0;
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        auto status = testing::AgentStatus(port_);
        if (!status.contains("regions") || !status["regions"].contains("state")) return false;
        durable = status["regions"]["state"].value("durable_generation", uint64_t{0});
        return durable == 25;
      },
      30s))
      << "durable generation stuck at " << durable;
  EXPECT_NE(testing::HttpGet(port_, "/metrics").body.find("modelswap_region_durable_generation"),
            std::string::npos);

  // Pod restart: the agent dies, the memory emptyDir is gone.
  testing::KillAndReap(agent_);
  agent_ = -1;
  std::filesystem::remove_all(shm_);
  std::filesystem::create_directories(shm_);
  StartAgent();
  ASSERT_TRUE(testing::PollUntil([&] { return Ready(); }, 30s)) << "agent never ready again";
  // Ready implies restored: the region is back before any app could start.
  ASSERT_TRUE(std::filesystem::exists(shm_ + "/regions/state.region"));
  out = RunApp(1);
  EXPECT_NE(out.find("attach gen=25 "), std::string::npos) << out;
  EXPECT_NE(out.find("restored=25"), std::string::npos) << out;
  auto status = testing::AgentStatus(port_);
  EXPECT_EQ(status["regions"]["state"].value("restores", 0), 1) << status.dump();
}

}  // namespace
}  // namespace modelswap
