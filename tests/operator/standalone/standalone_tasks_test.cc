// Standalone task records that must not outlive their use: a failed remove (retention could not
// delete an old version's file) expires after its owner's spec.writer.ttlSecondsAfterFinished,
// as its Job would in a cluster, so retention tries again; before, the record stayed Failed
// forever and the file with it.
#include <thread>

#include "tests/operator/standalone/standalone_fixture.h"

namespace modelswap::op {
namespace {

using namespace standalone_testing;  // NOLINT: the fixture and its helpers
using testing::WaitFor;

// MvYaml with retain 1 and a writer that is not retried and whose records expire after 1 s.
std::string ShortLived(const std::string& v) {
  return MvYaml(v, 1) + "  writer: {backoffLimit: 0, ttlSecondsAfterFinished: 1}\n";
}

class StandaloneTasksTest : public StandaloneTest {
 protected:
  // The fake sidecar, but `remove` fails (IOError) while TOOLS/failremove exists; every remove
  // is logged in TOOLS/removes.
  std::string FlakyRemoveSidecar() {
    const std::string fake = tools_.Write("fake-sidecar", kFakeSidecar, true);
    const std::string t = tools_.path;
    return tools_.Write("flaky-sidecar",
                        "#!/bin/sh\nif [ \"$1\" = remove ]; then\n  echo remove >> " + t +
                            "/removes\n  if [ -e " + t +
                            "/failremove ]; then\n"
                            "    echo '{\"error\":\"disk on fire\",\"code\":\"IOError\"}' >&2\n"
                            "    exit 1\n  fi\nfi\nexec " +
                            fake + " \"$@\"\n",
                        true);
  }
  std::string RemoveRecordState() {
    const std::string p = objects_.path + "/.status/tasks/ranker-v1-remove.json";
    if (!std::filesystem::exists(p)) return "";
    Json j = Json::parse(testing::ReadFile(p), nullptr, false);
    return j.is_discarded() ? "" : Field<std::string>(j, {"state"});
  }
};

TEST_F(StandaloneTasksTest, FailedRetentionRemoveExpiresAndIsRetried) {
  tools_.Write("failremove", "");
  Start(FlakyRemoveSidecar());
  for (const char* v : {"v1", "v2", "v3"}) {
    objects_.Write(std::string(v) + ".yaml", ShortLived(v));
    ASSERT_TRUE(WaitPhase(std::string("ranker-") + v, "Active")) << v;
  }
  // v3 active, v2 retained (retain 1): retention removes v1, which fails.
  ASSERT_TRUE(WaitFor([&] { return Lines(tools_.path + "/removes") >= 1; }));
  const std::string v1 = data_.path + "/ranker/versions/v1.msf";
  EXPECT_TRUE(std::filesystem::exists(v1));
  std::filesystem::remove(tools_.path + "/failremove");
  // The failed record expires after 1 s; retention then starts a new remove, which works.
  ASSERT_TRUE(WaitFor([&] { return !std::filesystem::exists(v1); }))
      << "removes run: " << Lines(tools_.path + "/removes")
      << ", record state: " << RemoveRecordState();
  EXPECT_GE(Lines(tools_.path + "/removes"), 2);
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v2.msf"));
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v3.msf"));
  EXPECT_EQ(Phase("ranker-v3"), "Active");
}

}  // namespace
}  // namespace modelswap::op
