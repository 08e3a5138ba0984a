// Standalone mode end to end: a real modelswap-operator process over a directory of YAML files,
// running a fake writer that honours the modelswap-sidecar CLI contract (and the real sidecar
// when it is built).
#include "tests/operator/standalone/standalone_fixture.h"

#include <thread>

namespace modelswap::op {
namespace {

using namespace standalone_testing;  // NOLINT: the fixture and its helpers
using testing::WaitFor;

TEST_F(StandaloneTest, FilesRollOutAndRemovalCleansUp) {
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
  objects_.Write("v2.yaml", MvYaml("v2"));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
  Json st = Json::parse(testing::ReadFile(objects_.path + "/.status/ranker-v2.json"));
  EXPECT_EQ(Field<int64_t>(st, {"status", "manifestGeneration"}), 2);
  EXPECT_EQ(Field<int64_t>(st, {"status", "bytes"}), 4096);
  // Removing v1's file deletes the version: its file goes, then its status.
  std::filesystem::remove(objects_.path + "/v1.yaml");
  ASSERT_TRUE(
      WaitFor([&] { return !std::filesystem::exists(objects_.path + "/.status/ranker-v1.json"); }));
  EXPECT_FALSE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v2.msf"));
  EXPECT_NE(testing::ReadFile(objects_.path + "/.status/events.log").find("Activated"),
            std::string::npos);
}

TEST_F(StandaloneTest, BadFileGetsAnErrorNamingTheProblem) {
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  std::string bad = MvYaml("v1");
  bad.replace(bad.find("model: ranker"), 13, "model: Bad_Model");
  objects_.Write("bad.yaml", bad);
  ASSERT_TRUE(
      WaitFor([&] { return std::filesystem::exists(objects_.path + "/.status/bad.yaml.error"); }));
  EXPECT_NE(testing::ReadFile(objects_.path + "/.status/bad.yaml.error").find("spec.model"),
            std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(objects_.path + "/bad.yaml"));  // never touched
  objects_.Write("bad.yaml", MvYaml("v1"));  // fixed: the error goes, the version rolls out
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_FALSE(std::filesystem::exists(objects_.path + "/.status/bad.yaml.error"));
}

// As a Job would, the writer is run 1 + spec.writer.backoffLimit (default 2) times before the
// version fails.
TEST_F(StandaloneTest, FailingWriterFailsTheVersionAfterItsRetries) {
  Start(tools_.Write("failing-sidecar",
                     "#!/bin/sh\necho run >> " + tools_.path +
                         "/invocations\necho '{\"error\":\"tsv line 3: no "
                         "tab\",\"code\":\"InvalidArgument\"}' >&2\nexit 1\n",
                     true));
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Failed"));
  Json st = Json::parse(testing::ReadFile(objects_.path + "/.status/ranker-v1.json"));
  EXPECT_NE(Field<std::string>(st, {"status", "message"}).find("no tab"), std::string::npos);
  EXPECT_EQ(Invocations(), 3);
  Json record = Json::parse(testing::ReadFile(Record()));
  EXPECT_EQ(Field<int>(record, {"attempts"}), 3);
}

// An operator killed while its writer runs: the next one adopts the writer (same pid and start
// time) instead of starting a second one, and takes its result when it ends.
TEST_F(StandaloneTest, RestartAdoptsARunningWriterAndNeverRunsItTwice) {
  StartWithGatedWriter();
  StopOperator(SIGKILL);
  Start(tools_.path + "/gated-sidecar");
  ASSERT_TRUE(WaitFor([&] {
    return testing::ReadFile(tools_.path + "/operator.err").find("adopted running task") !=
           std::string::npos;
  }));
  // A window for what must not happen (a second writer): two polling rounds with the task
  // adopted, in which a second one would have logged its start.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(Invocations(), 1);
  tools_.Write("go", "");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_EQ(Invocations(), 1);
  Json st = Json::parse(testing::ReadFile(objects_.path + "/.status/ranker-v1.json"));
  EXPECT_EQ(Field<int64_t>(st, {"status", "bytes"}), 4096);
}

// The writer finishes while no operator runs: the next operator reads its outcome from its
// output instead of running it again (which this writer would refuse: the file exists).
TEST_F(StandaloneTest, RestartAfterTheWriterFinishedUnwatchedKeepsItsResult) {
  StartWithGatedWriter();
  StopOperator(SIGKILL);
  tools_.Write("go", "");
  const std::string out = objects_.path + "/.status/tasks/ranker-v1-write.out";
  ASSERT_TRUE(WaitFor([&] { return Lines(out) == 1; }));  // the writer printed its result
  Start(tools_.path + "/gated-sidecar");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_EQ(Invocations(), 1);
  EXPECT_EQ(Field<std::string>(Json::parse(testing::ReadFile(Record())), {"state"}), "Succeeded");
}

// The operator and then its orphaned writer are killed (as a reboot or a container restart
// would): the writer left no result, so the next operator forgets it and runs it again instead
// of failing the version.
TEST_F(StandaloneTest, WriterKilledWhileNoOperatorRanRunsAgain) {
  StartWithGatedWriter();
  const pid_t writer =
      static_cast<pid_t>(Field<int64_t>(Json::parse(testing::ReadFile(Record())), {"pid"}, -1));
  StopOperator(SIGKILL);
  ASSERT_EQ(::kill(writer, SIGKILL), 0);
  // Not our child: wait until it is gone (its lock is then free).
  ASSERT_TRUE(WaitFor([&] {
    return ::kill(writer, 0) != 0 ||
           testing::ReadFile("/proc/" + std::to_string(writer) + "/stat").find(") Z") !=
               std::string::npos;
  }));
  tools_.Write("go", "");
  Start(tools_.path + "/gated-sidecar");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_EQ(Invocations(), 2);
}

// The operator died after the writer started but before anything was recorded (simulated by
// deleting the record): the writer's lifetime lock still tells the next operator it runs.
TEST_F(StandaloneTest, RunningWriterWithoutARecordIsAdoptedThroughItsLock) {
  StartWithGatedWriter();
  StopOperator(SIGKILL);
  std::filesystem::remove(Record());
  Start(tools_.path + "/gated-sidecar");
  ASSERT_TRUE(WaitFor([&] {
    return testing::ReadFile(tools_.path + "/operator.err").find("(no record)") !=
           std::string::npos;
  }));
  tools_.Write("go", "");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_EQ(Invocations(), 1);
}

// A graceful stop kills the running writer and forgets it (stopped is not failed): the next
// operator runs it again and the version rolls out.
TEST_F(StandaloneTest, GracefulStopForgetsTheKilledWriterSoItRunsAgain) {
  StartWithGatedWriter();
  StopOperator(SIGTERM);
  EXPECT_FALSE(std::filesystem::exists(Record()));
  // Stopped by its SIGTERM (which a blocked signal mask inherited from the operator used to
  // hold off until the SIGKILL 5 s later).
  EXPECT_EQ(testing::ReadFile(tools_.path + "/signals"), "TERM\n");
  tools_.Write("go", "");
  Start(tools_.path + "/gated-sidecar");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_EQ(Invocations(), 2);
}

// The status file keeps the spec (as an object) so a restarted operator can tell an edit made
// while it was down: unchanged keeps the generation, changed bumps it.
TEST_F(StandaloneTest, RestartBumpsTheGenerationOnlyForASpecChangedMeanwhile) {
  const std::string sidecar = tools_.Write("fake-sidecar", kFakeSidecar, true);
  const std::string status = objects_.path + "/.status/ranker-v1.json";
  auto restart = [&] {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    Start(sidecar);
  };
  Start(sidecar);
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  Json st = Json::parse(testing::ReadFile(status));
  EXPECT_TRUE(st["spec"].is_object());
  EXPECT_EQ(Field<int64_t>(st, {"spec", "retain"}), 3);
  // A file that never parses, sorted after v1.yaml: its .error, rewritten on every scan, shows
  // the restarted operator has scanned v1.yaml twice (and reconciled in between).
  objects_.Write("zz-marker.yaml", "kind: [");
  restart();
  WaitForScansAfter(objects_.path + "/.status/zz-marker.yaml.error", std::chrono::milliseconds(0));
  EXPECT_EQ(Field<int64_t>(Json::parse(testing::ReadFile(status)), {"metadata", "generation"}), 1);
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  objects_.Write("v1.yaml", MvYaml("v1", 5));
  Start(sidecar);
  ASSERT_TRUE(WaitFor([&] {
    Json j = Json::parse(testing::ReadFile(status), nullptr, false);
    return Field<int64_t>(j, {"metadata", "generation"}) == 2 &&
           Field<int64_t>(j, {"status", "observedGeneration"}) == 2;
  }));
}

// A bad edit (a truncated or broken file) must not delete what the file defined: the version
// keeps serving and its data stays until the file is fixed.
TEST_F(StandaloneTest, BrokenEditKeepsTheVersionAndItsData) {
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  const std::string error = objects_.path + "/.status/v1.yaml.error";
  const std::string full = MvYaml("v1");
  // Not YAML at all; then YAML cut before spec.storage (the object's name is still readable).
  for (const std::string& broken : {std::string("apiVersion: modelswap.io/v1alpha1\nkind: [Mo"),
                                    full.substr(0, full.find("  storage"))}) {
    objects_.Write("v1.yaml", broken);
    // Scans past the 2 s deletion grace: a deletion would have been marked and acted on.
    WaitForScansAfter(error, std::chrono::milliseconds(2500));
    EXPECT_EQ(Phase("ranker-v1"), "Active");
    EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
    objects_.Write("v1.yaml", MvYaml("v1"));
    ASSERT_TRUE(WaitFor([&] { return !std::filesystem::exists(error); }));
  }
  EXPECT_EQ(Phase("ranker-v1"), "Active");
}

// A file that cannot be read (here: over the 1 MiB limit) is an error for the user, never a
// deletion of what it defined.
TEST_F(StandaloneTest, UnreadableFileKeepsTheVersion) {
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  objects_.Write("v1.yaml", MvYaml("v1") + "# " + std::string(2 << 20, 'x') + "\n");
  const std::string error = objects_.path + "/.status/v1.yaml.error";
  WaitForScansAfter(error, std::chrono::milliseconds(2500));  // past the deletion grace
  EXPECT_EQ(Phase("ranker-v1"), "Active");
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
}

// A task record that does not parse is skipped with a log line; the operator still runs.
TEST_F(StandaloneTest, CorruptTaskRecordIsSkipped) {
  std::filesystem::create_directories(objects_.path + "/.status/tasks");
  objects_.Write(".status/tasks/ranker-v1-write.json", "{\"name\": \"../../etc\", \"kind\"");
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_NE(testing::ReadFile(tools_.path + "/operator.err").find("skipping task record"),
            std::string::npos);
}

// The rollback annotation works on files as on a cluster: a change to it is a change (but not a
// new generation), and a malformed one is reported without touching the version.
TEST_F(StandaloneTest, ActivateRequestAnnotationRollsBack) {
  ASSERT_NO_FATAL_FAILURE(RollOutV1ThenV2(tools_.Write("fake-sidecar", kFakeSidecar, true)));
  auto annotated = [](const std::string& value) {
    std::string y = MvYaml("v1");
    return y.replace(y.find("spec:"), 0,
                     "  annotations:\n    modelswap.io/activate-requested-at: " + value + "\n");
  };
  objects_.Write("v1.yaml", annotated("7"));  // a number, not a string
  const std::string error_file = objects_.path + "/.status/v1.yaml.error";
  ASSERT_TRUE(WaitFor([&] {
    return testing::ReadFile(error_file).find("metadata.annotations") != std::string::npos;
  })) << testing::ReadFile(error_file);
  EXPECT_EQ(Phase("ranker-v1"), "Superseded");
  objects_.Write("v1.yaml", annotated("\"2026-11-22T07:00:00Z\""));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Superseded"));  // its status file is written next
  EXPECT_EQ(testing::ReadFile(data_.path + "/ranker/manifest"), "v1\n");
  Json st = Json::parse(testing::ReadFile(objects_.path + "/.status/ranker-v1.json"));
  EXPECT_EQ(Field<std::string>(st, {"status", "lastHandledActivateRequest"}),
            "2026-11-22T07:00:00Z");
  EXPECT_EQ(Field<int64_t>(st, {"metadata", "generation"}), 1);
  EXPECT_FALSE(std::filesystem::exists(error_file));
}

// Review findings: an object that moved to another file is tied to that file (a broken edit of
// the new file keeps it), and what happened to the files while no operator ran is acted on.
TEST_F(StandaloneTest, RenamedFileThenBrokenKeepsTheVersion) {
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  objects_.Write("a.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  std::filesystem::rename(objects_.path + "/a.yaml", objects_.path + "/b.yaml");
  ASSERT_TRUE(WaitFor([&] {
    Json j =
        Json::parse(testing::ReadFile(objects_.path + "/.status/ranker-v1.json"), nullptr, false);
    return Field<std::string>(j, {"file"}) == "b.yaml";
  }));
  objects_.Write("b.yaml", "apiVersion: [");  // broken
  const std::string error = objects_.path + "/.status/b.yaml.error";
  WaitForScansAfter(error, std::chrono::milliseconds(2500));  // past the deletion grace
  EXPECT_EQ(Phase("ranker-v1"), "Active");
  EXPECT_TRUE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
}

TEST_F(StandaloneTest, FilesDeletedOrReplacedWhileStoppedAreActedOnAtRestart) {
  const std::string sidecar = tools_.Write("fake-sidecar", kFakeSidecar, true);
  ASSERT_NO_FATAL_FAILURE(RollOutV1ThenV2(sidecar));
  StopOperator(SIGTERM);
  // While stopped: v1's file deleted; v2's file now names another version under the same name.
  std::filesystem::remove(objects_.path + "/v1.yaml");
  std::string other = MvYaml("v3");
  other.replace(other.find("name: ranker-v3"), 15, "name: ranker-v2");
  objects_.Write("v2.yaml", other);
  Start(sidecar);
  ASSERT_TRUE(
      WaitFor([&] { return !std::filesystem::exists(objects_.path + "/.status/ranker-v1.json"); }));
  EXPECT_FALSE(std::filesystem::exists(data_.path + "/ranker/versions/v1.msf"));
  const std::string error = objects_.path + "/.status/v2.yaml.error";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(error); }));
  EXPECT_NE(testing::ReadFile(error).find("immutable"), std::string::npos)
      << testing::ReadFile(error);
  EXPECT_EQ(Phase("ranker-v2"), "Active");
  EXPECT_FALSE(std::filesystem::exists(data_.path + "/ranker/versions/v3.msf"));
}

TEST_F(StandaloneTest, SecondOperatorOnTheSameDirectoryRefusesToStart) {
  Start(tools_.Write("fake-sidecar", kFakeSidecar, true));
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));  // the first one is up and holds the lock
  auto second = SpawnProcess({MODELSWAP_OPERATOR_BIN, "--standalone", objects_.path, "--root",
                              data_.path, "--sidecar-bin", tools_.path + "/fake-sidecar"},
                             tools_.path + "/second.out", tools_.path + "/second.err");
  ASSERT_TRUE(second.has_value());
  std::optional<int> code;
  ASSERT_TRUE(WaitFor([&] { return (code = TryReap(*second)).has_value(); }));
  EXPECT_EQ(*code, 2);
  EXPECT_NE(testing::ReadFile(tools_.path + "/second.err").find("another modelswap-operator"),
            std::string::npos)
      << testing::ReadFile(tools_.path + "/second.err");
}

TEST_F(StandaloneTest, RealSidecarWritesAndPublishes) {
  const char* env_bin = std::getenv("MODELSWAP_SIDECAR_BIN");  // a sidecar built elsewhere
  std::string bin = env_bin != nullptr ? env_bin : MODELSWAP_SIDECAR_BIN;
  if (bin.empty() || !std::filesystem::exists(bin)) GTEST_SKIP() << "modelswap-sidecar not built";
  Start(bin);
  objects_.Write("v1.yaml", MvYaml("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  Json manifest = Json::parse(testing::ReadFile(data_.path + "/ranker/manifest.json"));
  EXPECT_EQ(manifest["version"], "v1");
  Json st = Json::parse(testing::ReadFile(objects_.path + "/.status/ranker-v1.json"));
  EXPECT_EQ(Field<std::string>(st, {"status", "checksum"}), manifest["checksum"]);
}

}  // namespace
}  // namespace modelswap::op
