// Standalone mode: two ModelVersion files naming one (model, version). Exactly one owns it: the
// oldest by creation time, ties by uid (operator/controller/reconciler.cc, MarkDuplicates); the
// others are Failed (DuplicateVersion) and never touch files or the manifest. In standalone mode
// creation time comes from the file (standalone_mode.h), so these tests also pin down what a
// file's mtime may not do: make a newcomer older than an object already known, or move
// ownership across an operator restart.
#include <thread>

#include "tests/operator/standalone/standalone_fixture.h"

namespace modelswap::op {
namespace {

using namespace standalone_testing;  // NOLINT: the fixture and its helpers
using testing::WaitFor;
using Clock = std::filesystem::file_time_type::clock;

// MvYaml(version) under another object name.
std::string Named(const std::string& name, const std::string& version) {
  std::string y = MvYaml(version);
  const std::string from = "name: ranker-" + version + "\n";
  return y.replace(y.find(from), from.size(), "name: " + name + "\n");
}

class StandaloneDuplicateTest : public StandaloneTest {
 protected:
  std::string Reason(const std::string& name, const std::string& type = "Written") {
    Json st = Json::parse(testing::ReadFile(objects_.path + "/.status/" + name + ".json"), nullptr,
                          false);
    for (const auto& c : Field<Json>(st, {"status", "conditions"}, Json::array())) {
      if (c.value("type", "") == type) return c.value("reason", "");
    }
    return "";
  }
  std::string Manifest() { return testing::ReadFile(data_.path + "/ranker/manifest"); }
  std::string ManifestGen() { return testing::ReadFile(data_.path + "/ranker/.gen"); }
  bool HasTask(const std::string& object) {
    return std::filesystem::exists(objects_.path + "/.status/tasks/" + object + "-write.json");
  }
  void SetMtime(const std::string& file, Clock::time_point t) {
    std::filesystem::last_write_time(objects_.path + "/" + file, t);
  }
  // Long enough for several scans (1 s apart) and reconciles to act on whatever they found.
  static void LetItSettle() { std::this_thread::sleep_for(std::chrono::seconds(4)); }
};

// The newcomer, with no help from its file's mtime: Failed (DuplicateVersion), it runs nothing, and
// removing it leaves the owner's file and manifest alone.
TEST_F(StandaloneDuplicateTest, SecondObjectForAVersionIsADuplicateAndTouchesNothing) {
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  objects_.Write("again.yaml", Named("ranker-v1-again", "v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1-again", "Failed"));
  EXPECT_EQ(Reason("ranker-v1-again"), "DuplicateVersion");
  EXPECT_FALSE(HasTask("ranker-v1-again"));
  std::filesystem::remove(objects_.path + "/again.yaml");
  ASSERT_TRUE(WaitFor(
      [&] { return !std::filesystem::exists(objects_.path + "/.status/ranker-v1-again.json"); }));
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
  EXPECT_EQ(Phase("ranker-v1"), "Active");
}

// The duplicate's file claims to be older than the owner (a copy that kept its mtime, cp -p): it
// is still the newcomer. Neither does it roll the model back to v1, nor does deleting it remove
// the file v1's owner still retains.
TEST_F(StandaloneDuplicateTest, OlderLookingDuplicateOfV1WhileV2IsActiveTouchesNothing) {
  ASSERT_NO_FATAL_FAILURE(RollOutV1ThenV2(tools_.Write("fake-sidecar", kFakeSidecar, true)));
  const std::string manifest = Manifest(), gen = ManifestGen();
  ASSERT_EQ(manifest, "v2\n");

  objects_.Write("again.yaml", Named("ranker-v1-again", "v1"));
  SetMtime("again.yaml", Clock::now() - std::chrono::hours(24));
  ASSERT_TRUE(WaitPhase("ranker-v1-again", "Failed"));
  EXPECT_EQ(Reason("ranker-v1-again"), "DuplicateVersion");
  LetItSettle();
  EXPECT_EQ(Phase("ranker-v1"), "Superseded");
  EXPECT_NE(Reason("ranker-v1"), "DuplicateVersion") << "the owner must stay the owner";
  EXPECT_EQ(Phase("ranker-v2"), "Active");
  EXPECT_EQ(Manifest(), manifest);
  EXPECT_EQ(ManifestGen(), gen);
  EXPECT_FALSE(HasTask("ranker-v1-again"));

  std::filesystem::remove(objects_.path + "/again.yaml");
  ASSERT_TRUE(WaitFor(
      [&] { return !std::filesystem::exists(objects_.path + "/.status/ranker-v1-again.json"); }));
  LetItSettle();
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
  EXPECT_EQ(Phase("ranker-v1"), "Superseded");
  EXPECT_EQ(Manifest(), manifest);
  EXPECT_EQ(ManifestGen(), gen);
}

// Files seen together with equal creation times: the smaller uid owns the version (standalone
// uids are "standalone-" + name). A restart keeps that owner even when the files' mtimes now say
// otherwise: creation time is fixed at first sight, as an API server's creationTimestamp is.
TEST_F(StandaloneDuplicateTest, TieGoesToTheSmallerUidAndARestartKeepsTheOwner) {
  std::filesystem::create_directories(objects_.path);
  objects_.Write("b.yaml", Named("ranker-v1-b", "v1"));
  objects_.Write("a.yaml", Named("ranker-v1-a", "v1"));
  const auto past =
      std::chrono::time_point_cast<std::chrono::seconds>(Clock::now()) - std::chrono::hours(1);
  SetMtime("a.yaml", past);
  SetMtime("b.yaml", past);
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  ASSERT_TRUE(WaitPhase("ranker-v1-a", "Active"));
  ASSERT_TRUE(WaitPhase("ranker-v1-b", "Failed"));
  EXPECT_EQ(Reason("ranker-v1-b"), "DuplicateVersion");
  EXPECT_FALSE(HasTask("ranker-v1-b"));
  const std::string gen = ManifestGen();

  StopOperator(SIGTERM);
  SetMtime("b.yaml", past - std::chrono::hours(1));  // b's file now looks older than a's
  SetMtime("a.yaml", Clock::now() - std::chrono::seconds(5));
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  LetItSettle();
  EXPECT_EQ(Phase("ranker-v1-a"), "Active");
  EXPECT_EQ(Phase("ranker-v1-b"), "Failed");
  EXPECT_EQ(Reason("ranker-v1-b"), "DuplicateVersion");
  EXPECT_NE(Reason("ranker-v1-a"), "DuplicateVersion") << "the owner must stay the owner";
  EXPECT_FALSE(HasTask("ranker-v1-b"));
  EXPECT_EQ(ManifestGen(), gen);
  EXPECT_EQ(Manifest(), "v1\n");
}

}  // namespace
}  // namespace modelswap::op
