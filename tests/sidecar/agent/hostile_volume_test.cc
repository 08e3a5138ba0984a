// The agent process against a hostile or broken model volume: a FIFO where the manifest should
// be, a symlink under versions/ pointing outside the root, a manifest repeating a generation the
// agent holds with other content, and the active file truncated under running apps. Each is
// refused or survived, the agent keeps serving and stops on SIGTERM, and each is reported in
// /v1/status and /metrics.
#include <sys/stat.h>

#include "sidecar/client/model/client.h"
#include "tests/sidecar/agent/agent_fixture.h"

namespace modelswap::testing {
namespace {

std::string Metrics(int port) {
  return HttpGet(port, "/metrics").body;
}

// A FIFO's open(O_RDONLY) waits for a writer: an agent that opened it plainly never came back,
// never loaded a later publish and ignored SIGTERM.
TEST_F(AgentFixture, FifoManifestNeitherWedgesTheAgentNorBlocksLaterPublishes) {
  Publish("v1");
  StartAgent();
  ASSERT_TRUE(WaitActive(1));
  std::string path = ManifestPath(root_, kModel);
  std::string fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  std::filesystem::rename(fifo, path);
  ASSERT_TRUE(PollUntil([&] {
    auto m = ModelStatus();
    return !m.is_null() && m["manifest_error"].is_string() &&
           m["manifest_error"].get<std::string>().find("not a regular file") != std::string::npos;
  })) << ModelStatus().dump();
  EXPECT_EQ(ModelStatus()["active"]["version"], "v1");
  EXPECT_EQ(HttpGet(port_, "/readyz").status, 200);
  EXPECT_NE(Metrics(port_).find("modelswap_agent_manifest_errors_total{model=\"ranker\"}"),
            std::string::npos);
  // Renamed over the FIFO; published over an unreadable manifest, so its generation is the
  // current Unix time (sidecar/volume/manifest.h).
  Manifest m2 = Publish("v2");
  ASSERT_TRUE(WaitActive(m2.generation));
  EXPECT_EQ(ModelStatus()["active"]["version"], "v2");
  ::kill(agent_, SIGTERM);
  auto st = WaitFor(agent_, std::chrono::seconds(20));
  ASSERT_TRUE(st.has_value()) << "agent ignored SIGTERM";
  agent_ = -1;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
}

// A version file that is a symlink to a valid file outside the root is refused, not served.
TEST_F(AgentFixture, SymlinkUnderVersionsPointingOutsideTheRootIsNotServed) {
  Publish("v1");
  StartAgent();
  ASSERT_TRUE(WaitActive(1));
  std::string outside = dir_ / "outside";
  WriteResult w = Write("v2", DefaultEnv(), outside);
  ASSERT_EQ(::symlink(VersionPath(outside, kModel, "v2").c_str(), VersionFile("v2").c_str()), 0);
  WriteManifest(root_, w, "v2", 2);
  ASSERT_TRUE(PollUntil([&] {
    auto m = ModelStatus();
    return !m.is_null() && m["last_rejected"].is_object() && m["last_rejected"]["generation"] == 2;
  })) << ModelStatus().dump();
  auto m = ModelStatus();
  EXPECT_NE(m["last_rejected"]["reason"].get<std::string>().find("symlink"), std::string::npos)
      << m.dump();
  EXPECT_EQ(m["active"]["version"], "v1");
}

// Generations never repeat; when a publisher repeats one anyway, the agent says so instead of
// silently keeping the old version.
TEST_F(AgentFixture, KnownGenerationWithOtherContentIsReportedAsAConflict) {
  Publish("v1");
  Publish("v2");
  StartAgent();
  ASSERT_TRUE(WaitActive(2));
  WriteResult w = Write("v3");
  WriteManifest(root_, w, "v3", 2);  // what publishing over a stale manifest used to do
  ASSERT_TRUE(PollUntil([&] { return ModelStatus()["generation_conflict"].is_string(); }))
      << ModelStatus().dump();
  auto m = ModelStatus();
  EXPECT_NE(m["generation_conflict"].get<std::string>().find("v3"), std::string::npos) << m.dump();
  EXPECT_EQ(m["generation_conflicts"], 1);
  EXPECT_EQ(m["active"]["version"], "v2");
  EXPECT_NE(Metrics(port_).find("modelswap_agent_generation_conflicts_total{model=\"ranker\"} 1"),
            std::string::npos);
  // A real publish (claimed generation 3) resolves it.
  ASSERT_TRUE(PublishVersion(DefaultEnv(), root_, kModel, "v3").has_value());
  ASSERT_TRUE(WaitActive(3));
  EXPECT_TRUE(ModelStatus()["generation_conflict"].is_null());
}

// The active file is truncated: apps are moved back to the previous version, whose file is still
// intact, instead of being told the model is unavailable; the damage is reported.
TEST_F(AgentFixture, TruncatedActiveFileFallsBackToThePreviousIntactVersion) {
  Publish("v1");
  StartAgent({"--retry-backoff", "50"});
  ASSERT_TRUE(WaitActive(1));
  Publish("v2");
  ASSERT_TRUE(WaitActive(2));
  std::filesystem::resize_file(VersionFile("v2"), 4096);
  ASSERT_TRUE(PollUntil([&] {
    auto m = ModelStatus();
    return !m.is_null() && m["active"].is_object() && m["active"]["version"] == "v1";
  })) << ModelStatus().dump();
  auto m = ModelStatus();
  EXPECT_EQ(m["state"], "active");
  EXPECT_EQ(m["truncations"], 1);
  ASSERT_TRUE(m["degraded"].is_string()) << m.dump();
  EXPECT_NE(m["degraded"].get<std::string>().find("truncated"), std::string::npos);
  EXPECT_EQ(HttpGet(port_, "/readyz").status, 200);
  std::string metrics = Metrics(port_);
  EXPECT_NE(metrics.find("modelswap_agent_degraded{model=\"ranker\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("modelswap_agent_truncations_total{model=\"ranker\"} 1"),
            std::string::npos);
  // Real reader processes read v1, every value of it.
  std::string progress = dir_ / "follow.progress";
  pid_t reader = Spawn({READER_HELPER_BIN, "follow", "--shm-dir", shm_, "--model", kModel,
                        "--until", "v1", "--progress", progress, "--deadline-ms", "60000"},
                       dir_ / "reader.log");
  auto st = WaitFor(reader, std::chrono::seconds(60));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << " " << ReadFile(progress);
  EXPECT_EQ(ReadProgress(progress).torn, 0u);
  std::string out = dir_ / "get.out";
  pid_t get = Spawn({MODELSWAP_SIDECAR_BIN, "get", "--shm-dir", shm_, "--model", kModel, "7"}, out);
  st = WaitFor(get, std::chrono::seconds(20));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 0) << ReadFile(out);
  EXPECT_TRUE(ReadFile(out).starts_with(std::string(kModel) + "/v1/7/")) << ReadFile(out);
  // A new publish ends the fallback.
  Publish("v3");
  ASSERT_TRUE(WaitActive(3));
  EXPECT_TRUE(ModelStatus()["degraded"].is_null());
}

}  // namespace
}  // namespace modelswap::testing
