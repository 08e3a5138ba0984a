// The controller end to end against the fake API server (controller_fixture.h): a version's
// life (writer Job, result, rollout order, rollback, retention, deletion, Events, duplicates);
// the test plays the job controller and the user.
#include <gtest/gtest.h>

#include "tests/operator/controller/controller_fixture.h"

namespace modelswap::op {
namespace {

using testing::WaitFor;

TEST_F(ControllerTest, CreateRunsAWriterJobAndRecordsItsResult) {
  server_.Create(kModelVersions, "default", NewMv("v7"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v7-write").has_value(); }));
  Json job = *Job("ranker-v7-write");
  const Json& c = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "example/sidecar:1");
  std::vector<std::string> args = c["args"];
  std::vector<std::string> want = {
      "write",     "--root",           "/models",  "--model",         "ranker", "--version",
      "v7",        "--generate-bytes", "4096",     "--seed",          "7",      "--reuse-existing",
      "--publish", "--scratch-dir",    "/scratch", "--progress-addr", ":8472"};
  EXPECT_EQ(args, want);
  // Pod Security "restricted" and the rest of the pod: job_test.cc, field by field.
  EXPECT_EQ(job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["name"], "ranker-v7");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "models");
  EXPECT_EQ(LabelOf(job, "modelswap.io/model"), "ranker");
  EXPECT_EQ(job["spec"]["ttlSecondsAfterFinished"], 600);
  ASSERT_TRUE(WaitPhase("ranker-v7", "Writing"));
  server_.CompleteJob("default", "ranker-v7-write", Result("v7", 1));
  ASSERT_TRUE(WaitPhase("ranker-v7", "Active"));
  Json mv = *server_.Get(kModelVersions, "default", "ranker-v7");
  EXPECT_EQ(Field<int64_t>(mv, {"status", "manifestGeneration"}), 1);
  EXPECT_EQ(Field<std::string>(mv, {"status", "checksum"}), "xxh3:0011223344556611");
  EXPECT_EQ(Field<int64_t>(mv, {"status", "observedGeneration"}), 1);
  EXPECT_TRUE(HasFinalizer(mv, kFinalizer));
  EXPECT_FALSE(server_.List(kEvents, "default").empty());
}

TEST_F(ControllerTest, JobFailureFailsTheVersionWithTheJobReason) {
  server_.Create(kModelVersions, "default", NewMv("v7"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v7-write").has_value(); }));
  server_.FailJob("default", "ranker-v7-write", "DeadlineExceeded",
                  "Job was active longer than specified deadline",
                  R"({"error":"write: ENOSPC","code":"IOError"})");
  ASSERT_TRUE(WaitPhase("ranker-v7", "Failed"));
  std::string msg = Field<std::string>(*server_.Get(kModelVersions, "default", "ranker-v7"),
                                       {"status", "message"});
  EXPECT_NE(msg.find("DeadlineExceeded"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ENOSPC"), std::string::npos) << msg;
}

TEST_F(ControllerTest, TwoVersionsRollInCreationOrder) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  server_.Create(kModelVersions, "default", NewMv("v2"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Pending"));
  EXPECT_FALSE(Job("ranker-v2-write").has_value());  // v1's writer still runs
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v2-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v2-write", Result("v2", 2));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
}

TEST_F(ControllerTest, RollbackRunsAPublishOnlyJob) {
  server_.Create(kModelVersions, "default", NewMv("v1", /*activate=*/false));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  std::vector<std::string> args =
      (*Job("ranker-v1-write"))["spec"]["template"]["spec"]["containers"][0]["args"];
  EXPECT_EQ(std::count(args.begin(), args.end(), "--publish"), 0);
  server_.CompleteJob(
      "default", "ranker-v1-write",
      R"({"path":"/models/ranker/versions/v1.msf","bytes":4096,"checksum":"xxh3:01"})");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Ready"));
  server_.PatchSpec(kModelVersions, "default", "ranker-v1", {{"spec", {{"activate", true}}}});
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-publish-2").has_value(); }));
  args = (*Job("ranker-v1-publish-2"))["spec"]["template"]["spec"]["containers"][0]["args"];
  EXPECT_EQ(args[0], "publish");
  server_.CompleteJob("default", "ranker-v1-publish-2", R"({"manifest_generation":5})");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
}

TEST_F(ControllerTest, QuickActivateFlipRollsBackASupersededVersion) {
  WriteV1ThenV2();
  ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
  // Back to back, as `kubectl patch ... false; kubectl patch ... true` in a script: a reconcile
  // rarely runs in between, so only the watch events show that activate was false.
  server_.PatchSpec(kModelVersions, "default", "ranker-v1", {{"spec", {{"activate", false}}}});
  server_.PatchSpec(kModelVersions, "default", "ranker-v1", {{"spec", {{"activate", true}}}});
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-publish-3").has_value(); }));
  server_.CompleteJob("default", "ranker-v1-publish-3", R"({"manifest_generation":5})");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
}

// The annotation asks once per value and the status remembers the value handled: made while the
// operator is down, it is acted on when it is back; a second restart does not act on it again.
TEST_F(ControllerTest, ActivateRequestAnnotationRollsBackAcrossRestarts) {
  WriteV1ThenV2();
  ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
  StopOperator();
  const std::string request = "2026-11-22T07:00:00Z";
  server_.PatchSpec(kModelVersions, "default", "ranker-v1",
                    {{"metadata", {{"annotations", {{kAnnotationActivateRequest, request}}}}}});
  StartOperator();
  const std::string job = TaskName("ranker-v1", TaskKind::kPublish, 1, {request, 0});
  ASSERT_TRUE(WaitFor([&] { return Job(job).has_value(); }));
  EXPECT_EQ(AnnotationOf(*Job(job), kAnnotationActivateRequest), request);
  std::vector<std::string> args = (*Job(job))["spec"]["template"]["spec"]["containers"][0]["args"];
  EXPECT_EQ(args[0], "publish");
  server_.CompleteJob("default", job, R"({"manifest_generation":5})");
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Superseded"));
  Json v1 = *server_.Get(kModelVersions, "default", "ranker-v1");
  EXPECT_EQ(Field<std::string>(v1, {"status", "lastHandledActivateRequest"}), request);
  EXPECT_EQ(Field<int64_t>(v1, {"metadata", "generation"}), 1) << "no spec edit was needed";

  // Roll forward to v2 the same way, then restart: v1's old request stays handled.
  server_.PatchSpec(kModelVersions, "default", "ranker-v2",
                    {{"metadata", {{"annotations", {{kAnnotationActivateRequest, request}}}}}});
  const std::string job2 = TaskName("ranker-v2", TaskKind::kPublish, 1, {request, 0});
  ASSERT_TRUE(WaitFor([&] { return Job(job2).has_value(); }));
  server_.CompleteJob("default", job2, R"({"manifest_generation":6})");
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active"));
  StopOperator();
  for (const Json& j : server_.List(kJobs, "default"))  // expired (TTL): only status remembers
    server_.Delete(kJobs, "default", NameOf(j));
  const int jobs = JobCount();
  const double reconciled = metrics_.reconciles_ok();
  const uint64_t rv = server_.rv();
  StartOperator();
  // The restarted operator's first reconcile of the model has run: whatever it would start or
  // write is on the server by now.
  ASSERT_TRUE(WaitFor([&] { return metrics_.reconciles_ok() > reconciled; }));
  EXPECT_EQ(JobCount(), jobs);
  EXPECT_EQ(Phase("ranker-v2"), "Active");
  EXPECT_EQ(server_.rv(), rv) << "nothing left to write after a restart";
}

TEST_F(ControllerTest, RetentionAndFinalizerRemoveFiles) {
  WriteV1ThenV2();
  server_.Create(kModelVersions, "default", NewMv("v3", true, 1));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v3-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v3-write", Result("v3", 3));
  // retain 1: v2 keeps its file, v1's is removed by a cleanup Job.
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-remove").has_value(); }));
  std::vector<std::string> args =
      (*Job("ranker-v1-remove"))["spec"]["template"]["spec"]["containers"][0]["args"];
  EXPECT_EQ(args[0], "remove");
  EXPECT_FALSE(Job("ranker-v2-remove").has_value());
  server_.CompleteJob("default", "ranker-v1-remove", R"({"removed":true})");
  ASSERT_TRUE(WaitFor([&] {
    auto o = server_.Get(kModelVersions, "default", "ranker-v1");
    return o && Field<bool>(*o, {"status", "fileRemoved"});
  }));
  // Deleting v2 removes its file first, then the object goes.
  EXPECT_EQ(server_.Delete(kModelVersions, "default", "ranker-v2"), 200);
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v2-remove").has_value(); }));
  EXPECT_TRUE(server_.Get(kModelVersions, "default", "ranker-v2").has_value());
  server_.CompleteJob("default", "ranker-v2-remove", R"({"removed":true})");
  ASSERT_TRUE(
      WaitFor([&] { return !server_.Get(kModelVersions, "default", "ranker-v2").has_value(); }));
}

// A deleted version removes its file beside another version's running writer: deletion never
// waits for the model's other tasks, and what it waits for is its condition Deleting.
TEST_F(ControllerTest, DeletionDoesNotWaitForAnotherVersionsWriter) {
  WriteV1ThenV2();
  ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
  server_.Create(kModelVersions, "default", NewMv("v3", true, 1));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v3-write").has_value(); }));  // runs on
  EXPECT_EQ(server_.Delete(kModelVersions, "default", "ranker-v1"), 200);
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-remove").has_value(); }));
  ASSERT_TRUE(WaitFor([&] {
    auto o = server_.Get(kModelVersions, "default", "ranker-v1");
    for (const auto& c : Field<Json>(*o, {"status", "conditions"}, Json::array())) {
      if (c.value("type", "") == "Deleting")
        return c.value("message", "").find("ranker-v1-remove") != std::string::npos;
    }
    return false;
  }));
  server_.CompleteJob("default", "ranker-v1-remove", R"({"removed":true})");
  ASSERT_TRUE(
      WaitFor([&] { return !server_.Get(kModelVersions, "default", "ranker-v1").has_value(); }));
  EXPECT_TRUE(Job("ranker-v3-write").has_value());
}

// A version whose own writer never starts (pod Pending) is deleted at once, with its Job.
TEST_F(ControllerTest, DeletingAVersionWithAStuckWriterDeletesItsJob) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  EXPECT_EQ(server_.Delete(kModelVersions, "default", "ranker-v1"), 200);
  ASSERT_TRUE(
      WaitFor([&] { return !server_.Get(kModelVersions, "default", "ranker-v1").has_value(); },
              std::chrono::seconds(15)));
  EXPECT_FALSE(Job("ranker-v1-write").has_value());
  bool cancelled = false;
  for (const Json& e : server_.List(kEvents, "default"))
    cancelled = cancelled || e.value("reason", "") == "TaskCancelled";
  EXPECT_TRUE(cancelled);
}

// One Event per happening: a repeated one is counted on the first (client-go's recorder), and a
// new object's first phase change names where it came from.
TEST_F(ControllerTest, EventsAreAggregatedAndNamePhases) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Writing"));
  std::map<std::string, int> by_reason;
  std::string writing;
  // The phase's Event is recorded after the status write that the wait above saw.
  ASSERT_TRUE(WaitFor([&] {
    by_reason.clear();
    for (const Json& e : server_.List(kEvents, "default")) {
      ++by_reason[e.value("reason", "")];
      if (e.value("reason", "") == "WriterStarted") writing = e.value("message", "");
    }
    return !writing.empty() && controller_->queue().Len() == 0;
  }));
  EXPECT_EQ(by_reason["TaskStarted"], 1);
  EXPECT_EQ(writing, "phase (none) -> Writing");
}

// A second object naming an existing (model, version) never runs a writer, never takes the
// first one's file, and its deletion leaves that file alone.
TEST_F(ControllerTest, SecondObjectForAVersionIsFailedAsADuplicate) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  Json dup = NewMv("v1");
  dup["metadata"]["name"] = "ranker-v1-again";
  server_.Create(kModelVersions, "default", dup);
  ASSERT_TRUE(WaitPhase("ranker-v1-again", "Failed"));
  Json o = *server_.Get(kModelVersions, "default", "ranker-v1-again");
  std::string reason;
  for (const auto& c : Field<Json>(o, {"status", "conditions"}, Json::array())) {
    if (c.value("type", "") == "Written") reason = c.value("reason", "");
  }
  EXPECT_EQ(reason, "DuplicateVersion");
  EXPECT_EQ(server_.Delete(kModelVersions, "default", "ranker-v1-again"), 200);
  ASSERT_TRUE(WaitFor(
      [&] { return !server_.Get(kModelVersions, "default", "ranker-v1-again").has_value(); }));
  EXPECT_EQ(JobCount(), 1);  // only ranker-v1's writer: no write, publish or remove for the copy
  EXPECT_EQ(Phase("ranker-v1"), "Active");
}

}  // namespace
}  // namespace modelswap::op
