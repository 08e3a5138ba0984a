// The controller end to end against the fake API server: real HTTP client, informers, work
// queue, reconciler and status writes; the test plays the job controller and the user.
#include "operator/controller/controller.h"

#include <gtest/gtest.h>

#include "common/subprocess.h"
#include "operator/api/well_known.h"
#include "operator/controller/kube_backend.h"
#include "operator/kube/http_client.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

using testing::WaitFor;

Json NewMv(const std::string& version, bool activate = true, int retain = 3) {
  return {{"apiVersion", "modelswap.io/v1alpha1"},
          {"kind", "ModelVersion"},
          {"metadata", {{"name", "ranker-" + version}}},
          {"spec",
           {{"model", "ranker"},
            {"version", version},
            {"storage", {{"claimName", "models"}, {"root", "/models"}}},
            {"source", {{"generate", {{"bytes", 4096}, {"seed", 7}}}}},
            {"activate", activate},
            {"retain", retain}}}};
}

std::string Result(const std::string& v, int gen) {
  return R"({"model":"ranker","version":")" + v + R"(","path":"/models/ranker/versions/)" + v +
         R"(.msf","bytes":4096,"checksum":"xxh3:00112233445566)" + std::to_string(10 + gen) +
         R"(","seconds":0.5,"manifest_generation":)" + std::to_string(gen) + "}\n";
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.SetBookmarkInterval(std::chrono::milliseconds(200));
    ClusterConfig cfg;
    cfg.server = server_.url();
    client_ = std::move(*HttpKubeClient::Create(DefaultEnv(), cfg));
    StartOperator();
  }
  // A fresh backend and controller, as a restarted operator process: empty caches and no memory
  // of earlier watch events.
  void StartOperator() {
    KubeBackendOptions o{.ns = "default",
                         .sidecar_image = "example/sidecar:1",
                         .instance = "test",
                         .min_watch_timeout_seconds = 5,
                         .watchdog_grace = std::chrono::milliseconds(1000),
                         .backoff_initial = std::chrono::milliseconds(50),
                         .probe_interval = std::chrono::milliseconds(100)};
    backend_ = std::make_unique<KubeBackend>(client_.get(), DefaultEnv(), o);
    controller_ = std::make_unique<Controller>(backend_.get(), DefaultEnv(), &metrics_,
                                               ControllerOptions{.workers = 2, .queue = {}});
    backend_->Start(controller_.get());
    ASSERT_TRUE(WaitFor([&] { return backend_->HasSynced(); }));
    controller_->Start();
  }
  void TearDown() override { StopOperator(); }
  void StopOperator() {
    controller_->Stop();
    backend_->Stop();
  }

  std::optional<Json> Job(const std::string& name) { return server_.Get(kJobs, "default", name); }
  std::string Phase(const std::string& mv) {
    auto o = server_.Get(kModelVersions, "default", mv);
    return o ? Field<std::string>(*o, {"status", "phase"}) : "<gone>";
  }
  bool WaitPhase(const std::string& mv, const std::string& phase) {
    return WaitFor([&] { return Phase(mv) == phase; });
  }
  int JobCount() { return static_cast<int>(server_.List(kJobs, "default").size()); }
  // Creates v1 and v2 (activate, retain 1) and completes both writers: v2 ends up Active.
  void WriteV1ThenV2() {
    for (const auto& [version, gen] : {std::pair{"v1", 1}, std::pair{"v2", 2}}) {
      const std::string job = std::string("ranker-") + version + "-write";
      server_.Create(kModelVersions, "default", NewMv(version, true, 1));
      ASSERT_TRUE(WaitFor([&] { return Job(job).has_value(); }));
      server_.CompleteJob("default", job, Result(version, gen));
    }
  }

  fake::FakeApiServer server_;
  OperatorMetrics metrics_;
  std::unique_ptr<HttpKubeClient> client_;
  std::unique_ptr<KubeBackend> backend_;
  std::unique_ptr<Controller> controller_;
};

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

TEST_F(ControllerTest, ConflictsOnStatusAreRetriedNotLost) {
  server_.FailStatusUpdates(3);
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_EQ(JobCount(), 1);
}

TEST_F(ControllerTest, DroppedWatchesAndExpiryLoseNothing) {
  // No bookmarks: one carrying an RV past the compaction below would let the reflectors resume
  // without the 410 (and relist) this test is about.
  server_.SetBookmarkInterval(std::chrono::hours(1));
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.DropWatches();
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  server_.Create(kEvents, "default",  // moves the RV past every one the reflectors hold
                 {{"apiVersion", "v1"}, {"kind", "Event"}, {"metadata", {{"name", "bump"}}}});
  server_.Compact();  // every RV the reflectors hold is now too old: ERROR 410 in a 200
  server_.DropWatches();
  server_.Create(kModelVersions, "default", NewMv("v2"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v2-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v2-write", Result("v2", 2));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
  EXPECT_EQ(JobCount(), 2);
  EXPECT_GE(server_.CountRequests("LIST", "modelversions"), 2);  // relisted after the 410
}

TEST_F(ControllerTest, ApiServerRestartWithNewResourceVersions) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.Restart(5000);
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  server_.Create(kModelVersions, "default", NewMv("v2"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v2-write").has_value(); }));
  EXPECT_EQ(JobCount(), 2);  // no duplicate writer after the restart
}

TEST_F(ControllerTest, SilentWatchIsRestartedByTheWatchdog) {
  server_.HangWatches(true);
  server_.DropWatches();  // reflectors reconnect into watches that never speak
  uint64_t before = server_.CountRequests("WATCH");
  // timeout 5..10 s + 1 s grace: the watchdog cancels and the reflector reopens.
  ASSERT_TRUE(
      WaitFor([&] { return server_.CountRequests("WATCH") >= static_cast<int>(before) + 8; },
              std::chrono::seconds(40)));
  server_.HangWatches(false);
  server_.DropWatches();
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
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

// N creates cost no 409 and no failed reconcile: every write starts from the latest object the
// operator wrote, and the fake answers 409 exactly where a real server would.
TEST_F(ControllerTest, CreatesCostNoConflicts) {
  constexpr int kN = 12;
  auto mv = [](int i) {
    Json o = NewMv("v1");
    o["metadata"]["name"] = "m" + std::to_string(i) + "-v1";
    o["spec"]["model"] = "m" + std::to_string(i);
    return o;
  };
  for (int i = 0; i < kN; ++i)
    server_.Create(kModelVersions, "default", mv(i));
  auto phase_all = [&](const std::string& p) {
    for (int i = 0; i < kN; ++i) {
      if (Phase("m" + std::to_string(i) + "-v1") != p) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor([&] { return phase_all("Writing"); }));
  for (int i = 0; i < kN; ++i)
    server_.CompleteJob("default", "m" + std::to_string(i) + "-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitFor([&] { return phase_all("Active"); }));
  ASSERT_TRUE(WaitFor([&] { return controller_->queue().Len() == 0; }));
  int writes = 0;
  for (const auto& [k, v] : server_.RequestCounts()) {
    if (k.rfind("PUT", 0) == 0 || k.rfind("POST", 0) == 0 || k.rfind("PATCH", 0) == 0) writes += v;
  }
  EXPECT_EQ(server_.CountResponses(409), 0);
  EXPECT_EQ(metrics_.reconciles_error(), 0);
  // Per version: finalizer, Job, status Writing, status Active, and an Event for the task and
  // for each phase change. CompleteJob's own writes go around HTTP.
  EXPECT_LE(writes, 7 * kN) << "writes=" << writes;
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

TEST_F(ControllerTest, SteadyStateMakesNoRequestsBeyondWatches) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  ASSERT_TRUE(WaitFor([&] { return controller_->queue().Len() == 0; }));
  // An empty queue does not mean an idle worker: the pass that wrote Active may still be sending
  // its Events. Stopping the workers waits for it, so only the passes below are measured.
  controller_->Stop();
  auto counts = server_.RequestCounts();
  int writes = 0;
  for (const auto& [k, v] : counts) {
    if (k.rfind("PUT", 0) == 0 || k.rfind("POST", 0) == 0 || k.rfind("PATCH", 0) == 0) writes += v;
  }
  // Reconcile the model again and again: with nothing changed, nothing is written.
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(controller_->ReconcileOnce("default/ranker").has_value());
  int writes_after = 0;
  for (const auto& [k, v] : server_.RequestCounts()) {
    if (k.rfind("PUT", 0) == 0 || k.rfind("POST", 0) == 0 || k.rfind("PATCH", 0) == 0)
      writes_after += v;
  }
  EXPECT_EQ(writes_after, writes);
  EXPECT_EQ(server_.CountRequests("GET"), 0);  // reads come from the informer caches
}

// An injected pod whose agent refuses connections (port 1 on loopback: nothing listens) reaches
// the active version's status through KubeBackend::Observe: AgentsReachable False naming the pod,
// Ready False; the pod gone, the condition goes and Ready returns.
TEST_F(ControllerTest, UnreachableAgentShowsInStatusUntilItsPodGoes) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  Json pod = {
      {"metadata",
       {{"name", "app-0"},
        {"labels", {{kLabelInjected, "true"}}},
        {"annotations", {{kAnnotationModels, "ranker"}}}}},
      {"spec",
       {{"containers",
         {{{"name", "modelswap-agent"}, {"ports", {{{"name", "agent"}, {"containerPort", 1}}}}}}}}},
  };
  server_.Create(kPods, "default", pod);
  // Status goes through the subresource, as the kubelet writes it.
  ASSERT_TRUE(client_
                  ->Patch(kPods, "default", "app-0", PatchType::kMerge,
                          {{"status", {{"phase", "Running"}, {"podIP", "127.0.0.1"}}}}, true)
                  .has_value());
  auto cond = [&](const std::string& type) -> std::optional<Json> {
    auto mv = server_.Get(kModelVersions, "default", "ranker-v1");
    if (!mv) return std::nullopt;
    for (const Json& c : (*mv)["status"].value("conditions", Json::array())) {
      if (c.value("type", "") == type) return c;
    }
    return std::nullopt;
  };
  ASSERT_TRUE(WaitFor([&] {
    auto c = cond("AgentsReachable");
    return c && c->value("status", "") == "False";
  })) << server_.Get(kModelVersions, "default", "ranker-v1")->dump();
  auto c = cond("AgentsReachable");
  EXPECT_EQ(c->value("reason", ""), "AgentsUnreachable");
  EXPECT_NE(c->value("message", "").find("1 of 1 agents did not answer (e.g. default/app-0: "),
            std::string::npos)
      << c->dump();
  EXPECT_EQ(cond("Ready")->value("status", ""), "False");
  EXPECT_EQ(cond("Ready")->value("reason", ""), "AgentsUnreachable");
  EXPECT_EQ(Phase("ranker-v1"), "Active");
  server_.Delete(kPods, "default", "app-0");
  ASSERT_TRUE(WaitFor([&] { return !cond("AgentsReachable").has_value(); }))
      << server_.Get(kModelVersions, "default", "ranker-v1")->dump();
  EXPECT_EQ(cond("Ready")->value("status", ""), "True");
}

// The prober's flags reach RunCluster, which refuses nothing valid: the run gets as far as the
// kubeconfig (exit 2, naming it). Zero or garbage is refused at parse time, naming the flag.
TEST(ControllerFlagsTest, OperatorBinaryTakesTheProbeFlags) {
  std::vector<std::string> good = {MODELSWAP_OPERATOR_BIN, "--kubeconfig=/nonexistent/kubeconfig",
                                   "--probe-max-in-flight=8", "--probe-rollout-interval=0.5"};
  auto run = RunProcess(good, {}, std::chrono::seconds(20));
  ASSERT_TRUE(run.has_value()) << run.error().ToString();
  EXPECT_EQ(run->exit_code, 2);
  EXPECT_NE(run->err.find("nonexistent"), std::string::npos) << run->err;  // got to the config
  EXPECT_EQ(run->err.find("--probe"), std::string::npos) << run->err;
  const std::pair<int, std::string> bad[] = {{2, "--probe-max-in-flight=0"},
                                             {2, "--probe-max-in-flight=many"},
                                             {3, "--probe-rollout-interval=0"},
                                             {3, "--probe-rollout-interval=-1"}};
  for (const auto& [i, arg] : bad) {
    std::vector<std::string> argv = good;
    argv[i] = arg;
    run = RunProcess(argv, {}, std::chrono::seconds(20));
    ASSERT_TRUE(run.has_value()) << run.error().ToString();
    EXPECT_NE(run->exit_code, 0) << arg;
    EXPECT_EQ(run->err.find("nonexistent"), std::string::npos) << arg << ": " << run->err;
    EXPECT_NE(run->err.find(arg.substr(0, arg.find('='))), std::string::npos)
        << arg << ": " << run->err;
  }
}

}  // namespace
}  // namespace modelswap::op
