// The reconciler's decisions as a pure function: no HTTP, no processes.
#include "operator/controller/reconciler.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "common/checksum.h"
#include "operator/kube/resource.h"
#include "tests/operator/controller/reconciler_fixtures.h"

namespace modelswap::op {
namespace {

TEST(ReconcilerTest, NewVersionStartsItsWriter) {
  auto d = Decide(Inputs({Mv("v1", 10)}));
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_name, "ranker-v1-write");
  EXPECT_EQ(tasks[0]->task_kind, TaskKind::kWrite);
  auto st = Of(d, Action::Type::kWriteStatus);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0]->status.phase, Phase::kWriting);
  EXPECT_EQ(st[0]->status.job_name, "ranker-v1-write");
  EXPECT_EQ(st[0]->status.observed_generation, 1);
}

TEST(ReconcilerTest, MissingFinalizerIsAdded) {
  ModelVersion mv = Mv("v1", 10);
  mv.finalizers.clear();
  EXPECT_EQ(Of(Decide(Inputs({mv})), Action::Type::kAddFinalizer).size(), 1u);
}

TEST(ReconcilerTest, FinishedWriterMakesTheVersionActive) {
  ModelVersion v1 = Mv("v1", 10);
  auto d = Decide(Inputs({v1}, {Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded,
                                     WriteResult("v1", 4))}));
  auto st = Of(d, Action::Type::kWriteStatus);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0]->status.phase, Phase::kActive);
  EXPECT_EQ(st[0]->status.checksum, "xxh3:0011223344556677");
  EXPECT_EQ(st[0]->status.bytes, 1024);
  EXPECT_EQ(st[0]->status.manifest_generation, 4);
  ASSERT_NE(st[0]->status.FindCondition("Written"), nullptr);
  EXPECT_EQ(st[0]->status.FindCondition("Written")->status, "True");
  EXPECT_EQ(st[0]->status.FindCondition("Active")->observed_generation, 1);
  EXPECT_FALSE(Of(d, Action::Type::kEvent).empty());
}

// A chunked write's result (sidecar/commands/file_commands.cc) reaches status: its layout and
// chunks, in the JSON the API server stores and `kubectl get mv -o wide` shows.
TEST(ReconcilerTest, ChunkedWriteResultIsCopiedIntoStatus) {
  ModelVersion v1 = Mv("v1", 10);
  std::string result =
      R"({"path":"/models/ranker/versions/v1.recipe","bytes":4096,"checksum":"xxh3:00",)"
      R"("layout":"chunked","chunks":{"total":40,"new":3,"holes":1,"bytes_new":300,)"
      R"("bytes_reused":3700,"bytes_holes":96,"stored_bytes_new":120,"chunks_delta":2}})";
  auto d = Decide(
      Inputs({v1}, {Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, result)}));
  auto st = Of(d, Action::Type::kWriteStatus);
  ASSERT_EQ(st.size(), 1u);
  const ModelVersionStatus& s = st[0]->status;
  EXPECT_EQ(s.layout, "chunked");
  EXPECT_EQ(s.chunks_total, 40);
  EXPECT_EQ(s.chunks_new, 3);
  EXPECT_EQ(s.bytes_new, 300);
  EXPECT_EQ(s.bytes_reused, 3700);
  EXPECT_EQ(s.chunks_delta, 2);
  EXPECT_EQ(s.stored_bytes_new, 120);
  Json j = StatusToJson(s);
  EXPECT_EQ(j["layout"], "chunked");
  EXPECT_EQ(j["chunks"], Json::parse(R"({"total":40,"new":3,"bytesNew":300,"bytesReused":3700,)"
                                     R"("delta":2,"storedBytesNew":120})"));
  EXPECT_EQ(ParseStatus(j), s);
}

TEST(ReconcilerTest, WriteWithoutActivateIsReady) {
  ModelVersion v1 = Mv("v1", 10, /*activate=*/false);
  std::string result =
      R"({"path":"/models/ranker/versions/v1.msf","bytes":5,"checksum":"xxh3:00"})";
  auto d = Decide(
      Inputs({v1}, {Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, result)}));
  EXPECT_EQ(Of(d, Action::Type::kWriteStatus)[0]->status.phase, Phase::kReady);
}

TEST(ReconcilerTest, FailedJobFailsWithItsReason) {
  ModelVersion v1 = Mv("v1", 10);
  auto t = Task(v1, TaskKind::kWrite, TaskObservation::State::kFailed,
                R"({"error":"tsv line 3: no tab","code":"InvalidArgument"})");
  t.reason = "BackoffLimitExceeded";
  t.message = "Job has reached the specified backoff limit";
  auto d = Decide(Inputs({v1}, {t}));
  auto st = Of(d, Action::Type::kWriteStatus);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0]->status.phase, Phase::kFailed);
  EXPECT_NE(st[0]->status.message.find("BackoffLimitExceeded"), std::string::npos);
  EXPECT_NE(st[0]->status.message.find("no tab"), std::string::npos);
  bool warned = false;
  for (auto* e : Of(d, Action::Type::kEvent))
    warned |= e->event_type == "Warning";
  EXPECT_TRUE(warned);
  EXPECT_TRUE(Of(d, Action::Type::kStartTask).empty());  // terminal: no retry loop
}

TEST(ReconcilerTest, VersionsRollOneAtATimeInCreationOrder) {
  ModelVersion v2 = Mv("v2", 20), v1 = Mv("v1", 10);
  std::vector<ModelVersion> vs = {v2, v1};  // listed out of order
  auto d = Decide(Inputs(vs));
  ASSERT_EQ(Of(d, Action::Type::kStartTask).size(), 1u);
  EXPECT_EQ(Of(d, Action::Type::kStartTask)[0]->mv.name, "ranker-v1");
  Apply(d, vs);
  // While v1's writer runs, nothing else starts.
  auto d2 = Decide(Inputs(vs, {Task(v1, TaskKind::kWrite, TaskObservation::State::kRunning)}));
  EXPECT_TRUE(Of(d2, Action::Type::kStartTask).empty());
  // v1 done: v2 starts, v1 active.
  auto d3 = Decide(Inputs(
      vs, {Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1))}));
  ASSERT_EQ(Of(d3, Action::Type::kStartTask).size(), 1u);
  EXPECT_EQ(Of(d3, Action::Type::kStartTask)[0]->mv.name, "ranker-v2");
}

TEST(ReconcilerTest, NewerActiveSupersedesOlder) {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20);
  auto d = Decide(Inputs(
      {v1, v2},
      {Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1)),
       Task(v2, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v2", 2))}));
  std::map<std::string, Phase> phases;
  for (auto* a : Of(d, Action::Type::kWriteStatus))
    phases[a->mv.name] = a->status.phase;
  EXPECT_EQ(phases["ranker-v1"], Phase::kSuperseded);
  EXPECT_EQ(phases["ranker-v2"], Phase::kActive);
}

TEST(ReconcilerTest, ActivateOnAReadyVersionRunsAPublishTask) {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20, /*activate=*/false);
  std::vector<ModelVersion> vs = {v1, v2};
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1)),
      Task(v2, TaskKind::kWrite, TaskObservation::State::kSucceeded,
           R"({"path":"/models/ranker/versions/v2.msf","bytes":9,"checksum":"xxh3:22"})")};
  auto d = Decide(Inputs(vs, ts));
  Apply(d, vs);
  EXPECT_EQ(vs[1].status.phase, Phase::kReady);
  EXPECT_TRUE(Of(d, Action::Type::kStartTask).empty());
  // The user sets activate: true (generation 2).
  vs[1].activate = true;
  vs[1].generation = 2;
  auto d2 = Decide(Inputs(vs, ts));
  auto tasks = Of(d2, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_kind, TaskKind::kPublish);
  EXPECT_EQ(tasks[0]->task_name, "ranker-v2-publish-2");
  // Publish done with manifest generation 3: v2 active, v1 superseded.
  ts.push_back(Task(vs[1], TaskKind::kPublish, TaskObservation::State::kSucceeded,
                    R"({"manifest_generation":3})", 2));
  auto d3 = Decide(Inputs(vs, ts));
  Apply(d3, vs);
  EXPECT_EQ(vs[1].status.phase, Phase::kActive);
  EXPECT_EQ(vs[1].status.published_generation, 2);
  EXPECT_EQ(vs[0].status.phase, Phase::kSuperseded);
}

TEST(ReconcilerTest, RollbackToASupersededVersionAfterActivateWasFalse) {
  auto [vs, ts] = V1SupersededByV2();
  vs[0].activate = false;
  vs[0].generation = 2;
  Apply(Decide(Inputs(vs, ts)), vs);
  EXPECT_TRUE(Of(Decide(Inputs(vs, ts)), Action::Type::kStartTask).empty());
  vs[0].activate = true;
  vs[0].generation = 3;
  EXPECT_EQ(OnlyTaskName(Decide(Inputs(vs, ts))), "ranker-v1-publish-3");
}

// activate false -> true so quickly that no reconcile saw it false: the backend saw the event.
TEST(ReconcilerTest, RollbackAfterAQuickFlipSeenOnlyInTheEventStream) {
  auto [vs, ts] = V1SupersededByV2();
  ASSERT_EQ(vs[0].status.phase, Phase::kSuperseded);
  vs[0].generation = 3;  // spec.activate went false (generation 2) and back to true (3)
  EXPECT_TRUE(Of(Decide(Inputs(vs, ts)), Action::Type::kStartTask).empty())
      << "without the event, a spec change alone must not republish";
  vs[0].deactivated_generation = 2;
  EXPECT_EQ(OnlyTaskName(Decide(Inputs(vs, ts))), "ranker-v1-publish-3");
}

TEST(ReconcilerTest, RetentionRemovesOldFilesButNotLoadedOnes) {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20), v3 = Mv("v3", 30);  // retain: 1
  std::vector<ModelVersion> vs = {v1, v2, v3};
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1)),
      Task(v2, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v2", 2)),
      Task(v3, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v3", 3))};
  auto in = Inputs(vs, ts);
  in.load = ModelLoad{true, 2, {{"v3", 1}, {"v1", 1}}};           // one pod still on v1
  EXPECT_TRUE(Of(Decide(in), Action::Type::kStartTask).empty());  // v2 kept (retain 1), v1 loaded
  in.load = ModelLoad{true, 2, {{"v3", 2}}};
  auto d = Decide(in);
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_name, "ranker-v1-remove");
  in.load.complete = false;  // an agent did not answer: never delete on partial information
  EXPECT_TRUE(Of(Decide(in), Action::Type::kStartTask).empty());
}

TEST(ReconcilerTest, DeletedVersionRemovesItsFileThenReleasesTheFinalizer) {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20);
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1)),
      Task(v2, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v2", 2))};
  std::vector<ModelVersion> vs = {v1, v2};
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[0].deleting = true;
  auto d = Decide(Inputs(vs, ts));
  ASSERT_EQ(Of(d, Action::Type::kStartTask).size(), 1u);
  EXPECT_EQ(Of(d, Action::Type::kStartTask)[0]->task_kind, TaskKind::kRemove);
  EXPECT_TRUE(Of(d, Action::Type::kRemoveFinalizer).empty());
  ts.push_back(
      Task(vs[0], TaskKind::kRemove, TaskObservation::State::kSucceeded, R"({"removed":true})"));
  auto d2 = Decide(Inputs(vs, ts));
  EXPECT_EQ(Of(d2, Action::Type::kRemoveFinalizer).size(), 1u);
}

TEST(ReconcilerTest, DeletionDoesNotWaitForAnotherVersionsWriter) {
  auto [vs, ts] = V1SupersededByV2();
  ModelVersion v3 = Mv("v3", 30);
  vs.push_back(v3);
  ts.push_back(Task(v3, TaskKind::kWrite, TaskObservation::State::kRunning));
  vs[0].deleting = true;
  auto d = Decide(Inputs(vs, ts));
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_name, "ranker-v1-remove");
  auto st = Of(d, Action::Type::kWriteStatus);
  ASSERT_FALSE(st.empty());
  const Condition* c = st[0]->status.FindCondition("Deleting");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->reason, "WaitingForTask");
  EXPECT_NE(c->message.find("ranker-v1-remove"), std::string::npos);
  // The remove task running does not hold up the model either.
  ts.push_back(Task(vs[0], TaskKind::kRemove, TaskObservation::State::kRunning));
  ts[2].state = TaskObservation::State::kSucceeded;
  ts[2].result = WriteResult("v3", 3);
  ModelVersion v4 = Mv("v4", 40);
  vs.push_back(v4);
  auto d2 = Decide(Inputs(vs, ts));
  auto t2 = Of(d2, Action::Type::kStartTask);
  ASSERT_EQ(t2.size(), 1u);
  EXPECT_EQ(t2[0]->task_name, "ranker-v4-write");
}

TEST(ReconcilerTest, DeletedVersionWithItsWriterRunningDeletesTheJobThenGoes) {
  ModelVersion v1 = Mv("v1", 10);
  v1.deleting = true;
  std::vector<TaskObservation> ts = {Task(v1, TaskKind::kWrite, TaskObservation::State::kRunning)};
  auto d = Decide(Inputs({v1}, ts));
  auto del = Of(d, Action::Type::kDeleteTask);
  ASSERT_EQ(del.size(), 1u);
  EXPECT_EQ(del[0]->task_name, "ranker-v1-write");
  EXPECT_TRUE(Of(d, Action::Type::kRemoveFinalizer).empty());
  auto d2 = Decide(Inputs({v1}, {}));  // the Job is gone
  EXPECT_EQ(Of(d2, Action::Type::kRemoveFinalizer).size(), 1u);
}

TEST(ReconcilerTest, FirstPhaseChangeNamesTheMissingPhase) {
  auto d = Decide(Inputs({Mv("v1", 10)}));
  bool seen = false;
  for (const Action* e : Of(d, Action::Type::kEvent)) {
    if (e->reason == "WriterStarted") {
      EXPECT_EQ(e->message, "phase (none) -> Writing");
      seen = true;
    }
  }
  EXPECT_TRUE(seen);
}

TEST(ReconcilerTest, SecondObjectForAVersionIsADuplicateAndTouchesNothing) {
  auto [vs, ts] = V1SupersededByV2();
  ModelVersion dup = Mv("v1", 30);  // same version v1, created later, another name and uid
  dup.name = "ranker-v1-again";
  dup.uid = "uid-again";
  vs.push_back(dup);
  auto d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Of(d, Action::Type::kStartTask).empty());
  const Action* st = nullptr;
  for (const Action* a : Of(d, Action::Type::kWriteStatus)) {
    if (a->mv.name == "ranker-v1-again") st = a;
  }
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->status.phase, Phase::kFailed);
  EXPECT_EQ(st->status.FindCondition("Written")->reason, "DuplicateVersion");
  EXPECT_NE(st->status.message.find("ranker-v1"), std::string::npos);
  // Deleting it releases it at once: the file is ranker-v1's.
  vs.back().status = st->status;
  vs.back().deleting = true;
  auto d2 = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Of(d2, Action::Type::kStartTask).empty());
  ASSERT_EQ(Of(d2, Action::Type::kRemoveFinalizer).size(), 1u);
  EXPECT_EQ(Of(d2, Action::Type::kRemoveFinalizer)[0]->mv.name, "ranker-v1-again");
}

TEST(ReconcilerTest, DuplicateTieIsBrokenByUid) {
  ModelVersion a = Mv("v1", 10), b = Mv("v1", 10);
  a.name = "ranker-b-name";
  a.uid = "uid-a";  // the smaller uid owns the version, whatever the names
  b.name = "ranker-a-name";
  b.uid = "uid-b";
  auto d = Decide(Inputs({a, b}));
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->mv.name, "ranker-b-name");
}

TEST(ReconcilerTest, FailedRemovalStillReleasesTheFinalizerWithAWarning) {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20);
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1)),
      Task(v2, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v2", 2))};
  std::vector<ModelVersion> vs = {v1, v2};
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[0].deleting = true;
  auto rm = Task(vs[0], TaskKind::kRemove, TaskObservation::State::kFailed);
  rm.reason = "DeadlineExceeded";  // e.g. the PVC is missing and the pod never started
  ts.push_back(rm);
  auto d = Decide(Inputs(vs, ts));
  EXPECT_EQ(Of(d, Action::Type::kRemoveFinalizer).size(), 1u);
  bool warned = false;
  for (auto* e : Of(d, Action::Type::kEvent))
    warned |= e->reason == "FileNotRemoved";
  EXPECT_TRUE(warned);
}

TEST(ReconcilerTest, DeletingTheActiveVersionKeepsItsFile) {
  ModelVersion v1 = Mv("v1", 10);
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1))};
  std::vector<ModelVersion> vs = {v1};
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[0].deleting = true;
  auto d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Of(d, Action::Type::kStartTask).empty());
  EXPECT_EQ(Of(d, Action::Type::kRemoveFinalizer).size(), 1u);
}

TEST(ReconcilerTest, UnchangedStatusIsNotWritten) {
  ModelVersion v1 = Mv("v1", 10);
  std::vector<ModelVersion> vs = {v1};
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1))};
  Apply(Decide(Inputs(vs, ts)), vs);
  auto d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Of(d, Action::Type::kWriteStatus).empty());
  EXPECT_TRUE(Of(d, Action::Type::kEvent).empty());
}

TEST(ReconcilerTest, PodsLoadedComeFromTheAgents) {
  ModelVersion v1 = Mv("v1", 10);
  auto in = Inputs(
      {v1}, {Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1))});
  in.load = ModelLoad{true, 3, {{"v1", 2}}};
  auto d = Decide(in);
  auto st = Of(d, Action::Type::kWriteStatus)[0]->status;
  EXPECT_EQ(st.pods_loaded, 2);
  EXPECT_EQ(st.pods_total, 3);
  EXPECT_EQ(st.FindCondition("Loaded")->status, "False");
}

TEST(ReconcilerTest, LongNamesGetShortDeterministicTaskNames) {
  std::string name(80, 'a');
  std::string t = TaskName(name, TaskKind::kWrite, 1);
  EXPECT_LE(t.size(), 63u);
  EXPECT_EQ(t, TaskName(name, TaskKind::kWrite, 1));
  EXPECT_NE(t, TaskName(std::string(79, 'a') + "b", TaskKind::kWrite, 1));
}

// Job names are part of the contract with a running cluster (a restarted operator finds its Jobs
// by name), so the hash in them is pinned: 32 bits of XXH3, as 8 hex digits.
TEST(ReconcilerTest, TaskNameHashesAreXxh3) {
  auto hex = [](std::string_view s) {
    char out[9];
    std::snprintf(out, sizeof(out), "%08x", static_cast<uint32_t>(Xxh3(s)));
    return std::string(out);
  };
  const std::string name(80, 'a');
  EXPECT_EQ(TaskName(name, TaskKind::kWrite, 1), std::string(48, 'a') + "-" + hex(name) + "-write");
  EXPECT_EQ(TaskName("ranker-v1", TaskKind::kPublish, 7, {"2026-01-02T03:04:05Z", 3}),
            "ranker-v1-publish-7-r" + hex("3#2026-01-02T03:04:05Z"));
}

TEST(ModelVersionTest, ValidationNamesTheField) {
  Json obj = {
      {"metadata", {{"name", "x"}}},
      {"spec",
       {{"model", "Bad_Name"}, {"version", "v1"}, {"source", {{"generate", {{"bytes", 1}}}}}}}};
  auto mv = ParseModelVersion(obj);
  ASSERT_FALSE(mv.has_value());
  EXPECT_NE(mv.error().message().find("spec.model"), std::string::npos);
  obj["spec"]["model"] = "ok";
  obj["spec"]["version"] = "..";
  EXPECT_FALSE(ParseModelVersion(obj).has_value());
  obj["spec"]["version"] = "v1";
  obj["spec"]["source"] = {{"tsv", {{"path", "../etc/passwd"}}}};
  auto bad_path = ParseModelVersion(obj);
  ASSERT_FALSE(bad_path.has_value());
  EXPECT_NE(bad_path.error().message().find(".."), std::string::npos);
  obj["spec"]["source"] = {{"tsv", {{"path", "a.tsv"}}}, {"file", {{"path", "b.msf"}}}};
  EXPECT_FALSE(ParseModelVersion(obj).has_value());
  obj["spec"]["source"] = {{"generate", {{"bytes", 0}}}};
  EXPECT_FALSE(ParseModelVersion(obj).has_value());
}

}  // namespace
}  // namespace modelswap::op
