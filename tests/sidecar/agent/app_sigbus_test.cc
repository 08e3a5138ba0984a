// The active version's file truncated under apps that hold a handle on it, with real processes:
// a real agent, and an app (C++ client, C ABI or Python) looking keys up in a loop on its pinned
// handle while this test truncates the file. The app must not die (without the client's SIGBUS
// guard, or Python's pread, it dies of SIGBUS), must see the damage reported, must never get a
// value that differs from the file's, and must get the version the agent falls back to when it
// acquires again (sigbus_app.cc says what the app checks).
#include <sys/wait.h>

#include "tests/sidecar/agent/agent_fixture.h"

namespace modelswap::testing {
namespace {

class AppSigbusTest : public AgentFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  pid_t StartApp(const std::string& progress) {
    const std::string deadline_ms = "60000";
    if (GetParam() == "python") {
      return Spawn({PYTHON_BIN, SIGBUS_APP_PY, shm_, kModel, "v1", progress, "60"},
                   dir_ / "app.log", {"MODELSWAP_PYTHON_PATH=" MODELSWAP_PYTHON_PATH});
    }
    return Spawn({SIGBUS_APP_BIN, "--abi", GetParam(), "--shm-dir", shm_, "--model", kModel,
                  "--fallback", "v1", "--progress", progress, "--deadline-ms", deadline_ms},
                 dir_ / "app.log");
  }
};

TEST_P(AppSigbusTest, AppSurvivesTruncationUnderItsHandleAndMovesToTheFallback) {
  Publish("v1");
  StartAgent({"--retry-backoff", "50"});
  ASSERT_TRUE(WaitActive(1));
  Publish("v2");
  ASSERT_TRUE(WaitActive(2));
  std::string progress = dir_ / "app.progress";
  pid_t app = StartApp(progress);
  ASSERT_GT(app, 0);
  ASSERT_TRUE(
      PollUntil([&] { return ReadFile(progress).starts_with("ready "); }, std::chrono::seconds(30)))
      << ReadFile(dir_ / "app.log");
  ASSERT_EQ(ReadFile(progress), "ready v2\n");
  // The app is looking keys up on its v2 handle now: cut the file to its header page.
  std::filesystem::resize_file(VersionFile("v2"), 4096);

  auto st = WaitFor(app, std::chrono::seconds(90));
  ASSERT_TRUE(st.has_value()) << "app did not finish";
  ASSERT_FALSE(WIFSIGNALED(*st)) << "app died of signal " << WTERMSIG(*st) << "\n"
                                 << ReadFile(dir_ / "app.log");
  std::istringstream in(ReadFile(progress));
  std::string word, final_version;
  uint64_t lookups = 0, ok = 0, errors = 0, torn = 0, raced = 0;
  ASSERT_TRUE(in >> word >> lookups >> ok >> errors >> torn >> raced >> final_version)
      << ReadFile(progress);
  std::printf("app %s: %s", GetParam().c_str(), ReadFile(progress).c_str());
  EXPECT_EQ(word, "done");
  EXPECT_GT(errors, 0u) << "the damage was never reported";
  EXPECT_EQ(torn, 0u) << "a value that is not the file's was returned as data";
  EXPECT_EQ(final_version, "v1");
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
      << ReadFile(progress) << ReadFile(dir_ / "app.log");
  // The agent says what happened.
  auto m = ModelStatus();
  EXPECT_EQ(m["active"]["version"], "v1") << m.dump();
  EXPECT_EQ(m["truncations"], 1) << m.dump();
}

INSTANTIATE_TEST_SUITE_P(Apis, AppSigbusTest, ::testing::Values("cpp", "c", "python"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace modelswap::testing
