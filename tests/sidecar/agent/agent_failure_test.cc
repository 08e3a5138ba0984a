// The agent process under failures: rejected versions (bad checksum, missing, short), a torn
// manifest, a file truncated under its mapping, a SIGKILLed reader holding an old version, and
// clean shutdown. Each keeps the old version serving and says why in /v1/status.
#include <sys/stat.h>

#include "common/checksum.h"
#include "sidecar/client/model/client.h"
#include "tests/sidecar/agent/reader_processes.h"

namespace modelswap::testing {
namespace {

class RejectionTest : public AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    Publish("v1");
    StartAgent();
    ASSERT_TRUE(WaitActive(1));
  }
  // The agent rejects generation 2 with a reason containing `why`, keeps v1 active, and an app
  // still reads v1.
  void ExpectRejected(const std::string& why) {
    ASSERT_TRUE(PollUntil([&] {
      auto m = ModelStatus();
      return !m.is_null() && m["last_rejected"].is_object() &&
             m["last_rejected"]["generation"] == 2;
    })) << ModelStatus().dump();
    auto m = ModelStatus();
    EXPECT_NE(m["last_rejected"]["reason"].get<std::string>().find(why), std::string::npos)
        << m["last_rejected"].dump();
    EXPECT_EQ(m["last_rejected"]["version"], "v2");
    EXPECT_EQ(m["state"], "active");
    EXPECT_EQ(m["active"]["version"], "v1");
    EXPECT_EQ(HttpGet(port_, "/readyz").status, 200);
    client::Options o;
    o.shm_dir = shm_;
    auto c = client::ModelClient::Attach(kModel, o);
    ASSERT_TRUE(c.has_value()) << c.error().ToString();
    auto h = (*c)->Acquire();
    ASSERT_TRUE(h.has_value()) << h.error().ToString();
    EXPECT_EQ(h->version(), "v1");
    EXPECT_TRUE(h->Get("1").has_value());
  }
};

TEST_F(RejectionTest, BadChecksumIsRejected) {
  WriteResult w = Write("v2");
  {
    std::fstream f(VersionFile("v2"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 100);
    f.put('\xff');
  }
  WriteManifest(root_, w, "v2", 2);
  ExpectRejected("checksum mismatch");
}

TEST_F(RejectionTest, MissingFileIsRejected) {
  WriteResult w = Write("v2");
  std::filesystem::remove(VersionFile("v2"));
  WriteManifest(root_, w, "v2", 2);
  ExpectRejected("No such file");
}

TEST_F(RejectionTest, ShortFileIsRejected) {
  WriteResult w = Write("v2");
  std::filesystem::resize_file(VersionFile("v2"), w.bytes / 2);
  WriteManifest(root_, w, "v2", 2);
  ExpectRejected("truncated or appended");
}

TEST_F(RejectionTest, TornManifestIsIgnoredAndReported) {
  std::string path = ManifestPath(root_, kModel);
  std::string text = ReadFile(path);
  {
    std::ofstream out(path, std::ios::trunc);
    out << text.substr(0, text.size() / 2);  // a half-copied manifest, as blobfuse may show
  }
  ASSERT_TRUE(PollUntil([&] { return !ModelStatus()["manifest_error"].is_null(); }));
  auto m = ModelStatus();
  EXPECT_NE(m["manifest_error"].get<std::string>().find("manifest"), std::string::npos);
  EXPECT_EQ(m["active"]["version"], "v1");
  EXPECT_EQ(m["state"], "active");
}

TEST_F(AgentFixture, FileTruncatedUnderTheMappingIsDroppedAndTheAgentKeepsServing) {
  Publish("v1");
  StartAgent({"--retry-backoff", "50"});
  ASSERT_TRUE(WaitActive(1));
  std::filesystem::resize_file(VersionFile("v1"), 4096);
  ASSERT_TRUE(PollUntil([&] { return ModelStatus()["state"] == "failed"; }))
      << ModelStatus().dump();
  auto m = ModelStatus();
  EXPECT_NE(m["last_rejected"]["reason"].get<std::string>().find("truncated"), std::string::npos)
      << m.dump();
  EXPECT_EQ(m["truncations"], 1);
  EXPECT_TRUE(Alive(agent_));
  EXPECT_EQ(HttpGet(port_, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(port_, "/readyz").status, 503);
  // Apps are told, instead of being handed a file that would SIGBUS them.
  client::Options o;
  o.shm_dir = shm_;
  o.heartbeat_thread = false;
  auto c = client::ModelClient::Attach(kModel, o);
  ASSERT_TRUE(c.has_value());
  auto h = (*c)->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::kUnavailable);
  // The next version is picked up as usual.
  Publish("v2");
  ASSERT_TRUE(WaitActive(2));
  EXPECT_EQ(HttpGet(port_, "/readyz").status, 200);
  auto h2 = (*c)->Acquire();
  ASSERT_TRUE(h2.has_value()) << h2.error().ToString();
  EXPECT_EQ(h2->version(), "v2");
}

// A reader holding v1 while v2 becomes active.
class HeldVersionTest : public AgentFixture {
 protected:
  // v1 served by an agent with `flags`, held by a reader (*reader) from before v2 was published
  // and became active. Wrap in ASSERT_NO_FATAL_FAILURE.
  void HoldV1ThenActivateV2(std::vector<std::string> flags, pid_t* reader) {
    Publish("v1");
    StartAgent(std::move(flags));
    ASSERT_TRUE(WaitActive(1));
    std::string progress = dir_ / "hold.progress";
    *reader = StartHolder(dir_, shm_, progress);
    ASSERT_TRUE(PollUntil([&] { return ReadFile(progress).starts_with("holding 1"); }));
    Publish("v2");
    ASSERT_TRUE(WaitActive(2));
  }
};

TEST_F(HeldVersionTest, SigkilledReaderDoesNotPinAnOldVersion) {
  pid_t reader = -1;
  // Long grace period: only the reader's missing heartbeat can release v1.
  ASSERT_NO_FATAL_FAILURE(
      HoldV1ThenActivateV2({"--grace-period", "600000", "--reader-timeout", "400"}, &reader));
  // Pinned while the reader lives: v1 stays mapped with one holder.
  ASSERT_TRUE(PollUntil([&] {
    auto r = ModelStatus()["retired"];
    return r.size() == 1 && r[0]["version"] == "v1" && r[0]["holders"] == 1;
  })) << ModelStatus().dump();
  EXPECT_EQ(ModelStatus()["reclaimed"], 0);
  KillAndReap(reader, SIGKILL);
  ASSERT_TRUE(PollUntil([&] { return ModelStatus()["retired"].empty(); })) << ModelStatus().dump();
  EXPECT_EQ(ModelStatus()["reclaimed"], 1);
}

TEST_F(HeldVersionTest, GracePeriodReleasesAVersionAnAppHoldsForever) {
  pid_t reader = -1;
  ASSERT_NO_FATAL_FAILURE(HoldV1ThenActivateV2({"--grace-period", "200"}, &reader));
  ASSERT_TRUE(PollUntil([&] { return ModelStatus()["reclaimed"] == 1; })) << ModelStatus().dump();
  EXPECT_TRUE(Alive(reader));  // still holding its handle, still alive: it maps v1 itself
  KillAndReap(reader, SIGKILL);
}

TEST_F(AgentFixture, SigtermStopsTheAgentCleanly) {
  Publish("v1");
  StartAgent();
  ASSERT_TRUE(WaitActive(1));
  ::kill(agent_, SIGTERM);
  auto st = WaitFor(agent_, std::chrono::seconds(20));
  ASSERT_TRUE(st.has_value()) << "agent ignored SIGTERM";
  agent_ = -1;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
  EXPECT_NE(ReadFile(log_).find("agent stopping"), std::string::npos);
}

TEST_F(AgentFixture, StageDirCopiesTheVersionLocallyAndGetReadsIt) {
  Publish("v1");
  std::string stage = dir_ / "stage";
  StartAgent({"--stage-dir", stage});
  ASSERT_TRUE(WaitActive(1));
  auto m = ModelStatus();
  EXPECT_EQ(m["active"]["file"], stage + "/" + kModel + "/v1.msf");
  EXPECT_EQ(m["active"]["source_file"], VersionFile("v1"));
  std::string out = dir_ / "get.out";
  pid_t get = Spawn({MODELSWAP_SIDECAR_BIN, "get", "--shm-dir", shm_, "--model", kModel, "7"}, out);
  auto st = WaitFor(get, std::chrono::seconds(20));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  EXPECT_TRUE(ReadFile(out).starts_with(std::string(kModel) + "/v1/7/")) << ReadFile(out);
  // The staged copy of a superseded version is deleted when it is reclaimed.
  Publish("v2");
  ASSERT_TRUE(WaitActive(2));
  EXPECT_TRUE(
      PollUntil([&] { return !std::filesystem::exists(stage + "/" + kModel + "/v1.msf"); }));
}

TEST_F(AgentFixture, GetReportsAMissingKey) {
  Publish("v1");
  StartAgent();
  ASSERT_TRUE(WaitActive(1));
  std::string out = dir_ / "get.out";
  pid_t get = Spawn(
      {MODELSWAP_SIDECAR_BIN, "get", "--shm-dir", shm_, "--model", kModel, "no-such-key"}, out);
  auto st = WaitFor(get, std::chrono::seconds(20));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 1);
  EXPECT_NE(ReadFile(out).find("NotFound"), std::string::npos) << ReadFile(out);
}

TEST_F(AgentFixture, MetricsExposeSwapsAndReadiness) {
  Publish("v1");
  StartAgent();
  ASSERT_TRUE(WaitActive(1));
  auto r = HttpGet(port_, "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("modelswap_agent_swaps_total{model=\"ranker\"} 1"), std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("modelswap_agent_ready 1"), std::string::npos);
  EXPECT_EQ(HttpGet(port_, "/nope").status, 404);
}

}  // namespace
}  // namespace modelswap::testing
