// Delta versions in standalone mode, end to end: a real modelswap-operator over a directory of
// YAML files running the real modelswap-sidecar (skipped when that sidecar cannot write deltas):
// a delta applied after its base is written on it and becomes Active with its chain in status; a
// delta applied before its base waits (Stalled, BaseMissing) and goes on once the base exists;
// retention keeps a base while a kept delta reads through it, and removes it after the delta.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "common/subprocess.h"
#include "operator/kube/object.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

using testing::WaitFor;

// Generated keys are "0", "1", ...: the delta changes "1", deletes "2", adds "new".
constexpr char kChanges[] = "1\tONE\n2\t\\N\nnew\tx\n";

std::string FullYaml(const std::string& v, int retain = 3) {
  return "apiVersion: modelswap.io/v1alpha1\nkind: ModelVersion\nmetadata:\n  name: ranker-" + v +
         "\nspec:\n  model: ranker\n  version: " + v +
         "\n  storage: {claimName: models}\n  source:\n    generate: {bytes: 65536, seed: 7}\n"
         "  retain: " +
         std::to_string(retain) + "\n";
}

std::string DeltaYaml(const std::string& v, const std::string& base) {
  return "apiVersion: modelswap.io/v1alpha1\nkind: ModelVersion\nmetadata:\n  name: ranker-" + v +
         "\nspec:\n  model: ranker\n  version: " + v +
         "\n  storage: {claimName: models}\n  source:\n    delta:\n      base: " + base +
         "\n      tsv: {path: changes/" + v + ".tsv}\n";
}

// The sidecar to run, or "" when it is not built or predates deltas.
std::string DeltaSidecar() {
  const char* env_bin = std::getenv("MODELSWAP_SIDECAR_BIN");  // a sidecar built elsewhere
  std::string bin = env_bin != nullptr ? env_bin : MODELSWAP_SIDECAR_BIN;
  if (bin.empty() || !std::filesystem::exists(bin)) return "";
  std::string help;
  if (FILE* p = ::popen((bin + " write --help 2>&1").c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
      help.append(buf, n);
    ::pclose(p);
  }
  return help.find("--delta-on") != std::string::npos ? bin : "";
}

class StandaloneDeltaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sidecar_ = DeltaSidecar();
    if (sidecar_.empty()) GTEST_SKIP() << "modelswap-sidecar with --delta-on not built";
    data_.Write("changes/v2.tsv", kChanges);
    std::filesystem::create_directories(objects_.path);
    auto pid = SpawnProcess({MODELSWAP_OPERATOR_BIN, "--standalone", objects_.path, "--root",
                             data_.path, "--sidecar-bin", sidecar_, "--log-level", "info"},
                            tools_.path + "/operator.out", tools_.path + "/operator.err");
    ASSERT_TRUE(pid.has_value());
    pid_ = *pid;
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Json Status(const std::string& name) {
    Json j = Json::parse(testing::ReadFile(objects_.path + "/.status/" + name + ".json"), nullptr,
                         false);
    return j.is_discarded() ? Json() : Field<Json>(j, {"status"}, Json());
  }
  std::string Condition(const std::string& name, const std::string& type,
                        const char* key = "reason") {
    for (const auto& c : Field<Json>(Status(name), {"conditions"}, Json::array())) {
      if (c.value("type", "") == type) return c.value(key, "");
    }
    return "";
  }
  bool WaitPhase(const std::string& name, const std::string& phase) {
    return WaitFor([&] { return Field<std::string>(Status(name), {"phase"}) == phase; });
  }
  std::string Why() {
    return testing::ReadFile(objects_.path + "/.status/events.log") +
           testing::ReadFile(tools_.path + "/operator.err");
  }

  std::string sidecar_;
  testing::TempDir objects_, data_, tools_;
  pid_t pid_ = -1;
};

TEST_F(StandaloneDeltaTest, DeltaAppliedAfterItsBaseBecomesActive) {
  objects_.Write("v1.yaml", FullYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active")) << Why();
  objects_.Write("v2.yaml", DeltaYaml("v2", "v1"));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active")) << Why();
  const Json chain = Status("ranker-v2")["chain"];
  EXPECT_EQ(chain["length"], 2) << chain.dump();
  ASSERT_EQ(chain["layers"].size(), 2u) << chain.dump();
  EXPECT_EQ(chain["layers"][0]["version"], "v2");
  EXPECT_EQ(chain["layers"][1]["version"], "v1");
  EXPECT_EQ(chain["layers"][1]["bytes"], Status("ranker-v1")["bytes"]);
  EXPECT_FALSE(chain.contains("compacted"));
  Json manifest = Json::parse(testing::ReadFile(data_.path + "/ranker/manifest.json"));
  EXPECT_EQ(manifest["version"], "v2");
  ASSERT_TRUE(manifest.contains("chain")) << manifest.dump();
  EXPECT_EQ(manifest["chain"][0]["version"], "v1");
  EXPECT_EQ(manifest["checksum"], Status("ranker-v2")["checksum"]);
}

TEST_F(StandaloneDeltaTest, DeltaAppliedBeforeItsBaseWaitsThenGoesOn) {
  objects_.Write("v2.yaml", DeltaYaml("v2", "v1"));
  ASSERT_TRUE(WaitFor([&] { return Condition("ranker-v2", "Stalled") == "BaseMissing"; })) << Why();
  EXPECT_EQ(Field<std::string>(Status("ranker-v2"), {"phase"}), "Pending");
  EXPECT_NE(Condition("ranker-v2", "Ready", "message").find("base version v1"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(objects_.path + "/.status/tasks/ranker-v2-write.json"));
  objects_.Write("v1.yaml", FullYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active")) << Why();
  EXPECT_TRUE(WaitPhase("ranker-v1", "Superseded"));  // its status may be written just after
  EXPECT_EQ(Status("ranker-v2")["chain"]["length"], 2);
  EXPECT_EQ(Condition("ranker-v2", "Stalled"), "");
  EXPECT_NE(testing::ReadFile(objects_.path + "/.status/events.log").find("BaseMissing"),
            std::string::npos);
}

// v1 full, v2 a delta on it, v3 full with retain 1: v2 is kept, so v1 must be too. With v4, v2
// goes, then v1 (the sidecar would refuse v1 while v2's file is there).
TEST_F(StandaloneDeltaTest, RetentionKeepsTheBaseOfAKeptDelta) {
  objects_.Write("v1.yaml", FullYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active")) << Why();
  objects_.Write("v2.yaml", DeltaYaml("v2", "v1"));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active")) << Why();
  objects_.Write("v3.yaml", FullYaml("v3", 1));
  ASSERT_TRUE(WaitPhase("ranker-v3", "Active")) << Why();
  // The pass that says why v1 is kept is the one that would have started its removal.
  ASSERT_TRUE(WaitFor([&] {
    return Condition("ranker-v1", "Ready", "message").find("base of delta v2") != std::string::npos;
  })) << Why();
  EXPECT_FALSE(std::filesystem::exists(objects_.path + "/.status/tasks/ranker-v1-remove.json"));
  objects_.Write("v4.yaml", FullYaml("v4", 1));
  ASSERT_TRUE(WaitFor([&] { return Status("ranker-v1").value("fileRemoved", false); })) << Why();
  EXPECT_TRUE(Status("ranker-v2").value("fileRemoved", false));
  EXPECT_FALSE(Status("ranker-v3").value("fileRemoved", false));
  EXPECT_EQ(testing::ReadFile(objects_.path + "/.status/events.log").find("RetentionRefused"),
            std::string::npos);
}

}  // namespace
}  // namespace modelswap::op
