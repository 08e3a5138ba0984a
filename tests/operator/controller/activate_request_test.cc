// Rollback by annotation: modelswap.io/activate-requested-at asks once per value, and the value
// handled is kept in status, so no relist or restart can lose or repeat a request.
#include <gtest/gtest.h>

#include "operator/api/well_known.h"
#include "operator/controller/reconciler.h"
#include "operator/kube/resource.h"
#include "tests/operator/controller/reconciler_fixtures.h"

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

constexpr const char* kReq1 = "2026-11-22T07:00:00Z";
constexpr const char* kReq2 = "2026-11-22T08:30:00Z";

// The publish Job the operator makes for a version's current request, in the given state.
TaskObservation RequestTask(const ModelVersion& mv, State state, const std::string& result) {
  const ActivateRequest request{mv.activate_request, mv.status.activate_requests_handled};
  TaskObservation t = Task(mv, TaskKind::kPublish, state, result, mv.generation);
  t.name = TaskName(mv.name, TaskKind::kPublish, mv.generation, request);
  t.request = request;
  return t;
}

std::vector<const Action*> Warnings(const Decision& d, const std::string& reason) {
  std::vector<const Action*> out;
  for (const Action* a : Of(d, Action::Type::kEvent)) {
    if (a->event_type == "Warning" && a->reason == reason) out.push_back(a);
  }
  return out;
}

TEST(ActivateRequestTest, AnnotationAndStatusFieldRoundTrip) {
  Json obj = {
      {"metadata",
       {{"name", "ranker-v1"},
        {"generation", 4},
        {"annotations", {{kAnnotationActivateRequest, kReq1}}}}},
      {"spec",
       {{"model", "ranker"}, {"version", "v1"}, {"source", {{"generate", {{"bytes", 1024}}}}}}},
      {"status", {{"lastHandledActivateRequest", kReq2}}}};
  auto mv = ParseModelVersion(obj);
  ASSERT_TRUE(mv.has_value()) << mv.error().ToString();
  EXPECT_EQ(mv->activate_request, kReq1);
  EXPECT_EQ(mv->status.last_handled_activate_request, kReq2);
  EXPECT_EQ(ParseStatus(StatusToJson(mv->status)), mv->status);
}

TEST(ActivateRequestTest, RequestOnASupersededVersionRepublishesItOnce) {
  auto [vs, ts] = V1SupersededByV2();
  ASSERT_EQ(vs[0].status.phase, Phase::kSuperseded);
  vs[0].activate_request = kReq1;  // no spec change: generation stays 1
  auto d = Decide(Inputs(vs, ts));
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_kind, TaskKind::kPublish);
  EXPECT_EQ(tasks[0]->task_request, (ActivateRequest{kReq1, 0}));
  EXPECT_EQ(tasks[0]->task_name, TaskName("ranker-v1", TaskKind::kPublish, 1, {kReq1, 0}));
  EXPECT_NE(tasks[0]->task_name, TaskName("ranker-v1", TaskKind::kPublish, 1));
  Apply(d, vs);
  EXPECT_EQ(vs[0].status.last_handled_activate_request, "") << "handled only when it ran";

  // The same decision again (a relist, a restart) starts the same, deterministic task.
  const Decision d_again = Decide(Inputs(vs, ts));
  auto again = Of(d_again, Action::Type::kStartTask);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0]->task_name, tasks[0]->task_name);

  ts.push_back(RequestTask(vs[0], State::kRunning, ""));
  EXPECT_TRUE(Of(Decide(Inputs(vs, ts)), Action::Type::kStartTask).empty());

  ts.back() = RequestTask(vs[0], State::kSucceeded, R"({"manifest_generation":3})");
  Apply(Decide(Inputs(vs, ts)), vs);
  EXPECT_EQ(vs[0].status.phase, Phase::kActive);
  EXPECT_EQ(vs[0].status.manifest_generation, 3);
  EXPECT_EQ(vs[0].status.last_handled_activate_request, kReq1);
  EXPECT_EQ(vs[1].status.phase, Phase::kSuperseded);

  // v2 rolls forward again; v1's request, already handled, must not pull it back, with or
  // without its Job still around.
  vs[1].activate_request = kReq2;
  ts.push_back(RequestTask(vs[1], State::kSucceeded, R"({"manifest_generation":4})"));
  Apply(Decide(Inputs(vs, ts)), vs);
  EXPECT_EQ(vs[1].status.phase, Phase::kActive);
  EXPECT_EQ(vs[0].status.phase, Phase::kSuperseded);
  EXPECT_TRUE(Of(Decide(Inputs(vs, ts)), Action::Type::kStartTask).empty());
  ts.erase(ts.begin() + 2);  // v1's request Job gone (TTL)
  EXPECT_TRUE(Of(Decide(Inputs(vs, ts)), Action::Type::kStartTask).empty());
}

TEST(ActivateRequestTest, ANewValueAsksAgainAndOldJobsDoNotRegress) {
  auto [vs, ts] = V1SupersededByV2();
  vs[0].activate_request = kReq1;
  ts.push_back(RequestTask(vs[0], State::kSucceeded, R"({"manifest_generation":3})"));
  vs[1].activate_request = kReq1;
  ts.push_back(RequestTask(vs[1], State::kSucceeded, R"({"manifest_generation":4})"));
  Apply(Decide(Inputs(vs, ts)), vs);
  ASSERT_EQ(vs[1].status.phase, Phase::kActive);
  ASSERT_EQ(vs[0].status.phase, Phase::kSuperseded);

  vs[0].activate_request = kReq2;  // the same version, the same generation, a new request
  const Decision d = Decide(Inputs(vs, ts));
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_request, (ActivateRequest{kReq2, 1}));
  EXPECT_NE(tasks[0]->task_name, TaskName("ranker-v1", TaskKind::kPublish, 1, {kReq1, 0}));
  ts.push_back(RequestTask(vs[0], State::kSucceeded, R"({"manifest_generation":5})"));
  Apply(Decide(Inputs(vs, ts)), vs);
  EXPECT_EQ(vs[0].status.phase, Phase::kActive);
  EXPECT_EQ(vs[0].status.manifest_generation, 5) << "kReq1's older Job must not lower it";
  EXPECT_EQ(vs[0].status.last_handled_activate_request, kReq2);
}

TEST(ActivateRequestTest, RequestOnTheActiveVersionIsOnlyRecorded) {
  auto [vs, ts] = V1SupersededByV2();
  vs[1].activate_request = kReq1;
  auto d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Of(d, Action::Type::kStartTask).empty());
  EXPECT_TRUE(Warnings(d, "ActivateRequestRefused").empty());
  Apply(d, vs);
  EXPECT_EQ(vs[1].status.last_handled_activate_request, kReq1);
  EXPECT_EQ(vs[1].status.phase, Phase::kActive);
}

// Decides v1's pending request, which must be refused with one Warning naming `why`; applies it.
void ExpectRefused(std::vector<ModelVersion>& vs, const std::vector<TaskObservation>& ts,
                   const std::string& why) {
  vs[0].activate_request = kReq1;
  const Decision d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Of(d, Action::Type::kStartTask).empty());
  auto w = Warnings(d, "ActivateRequestRefused");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0]->message.find(why), std::string::npos) << w[0]->message;
  EXPECT_NE(w[0]->message.find(kReq1), std::string::npos);
  Apply(d, vs);
  EXPECT_EQ(vs[0].status.last_handled_activate_request, kReq1);
}

TEST(ActivateRequestTest, RequestThatCannotBeHonouredIsRefusedWithAWarning) {
  {
    auto [vs, ts] = V1SupersededByV2();
    vs[0].activate = false;
    vs[0].generation = 2;
    ExpectRefused(vs, ts, "spec.activate is false");
    // Refused once: setting activate back to true later republishes by the spec, not twice.
    EXPECT_TRUE(Warnings(Decide(Inputs(vs, ts)), "ActivateRequestRefused").empty());
  }
  {
    auto [vs, ts] = V1SupersededByV2();
    vs[0].status.file_removed = true;  // retired by retention
    ExpectRefused(vs, ts, "retired");
  }
}

TEST(ActivateRequestTest, RequestOnAVersionNotYetWrittenWaitsForItsPublish) {
  ModelVersion v1 = Mv("v1", 10);
  v1.activate_request = kReq1;
  std::vector<ModelVersion> vs = {v1};
  auto d = Decide(Inputs(vs));
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_kind, TaskKind::kWrite) << "the write publishes it; no extra task";
  Apply(d, vs);
  EXPECT_EQ(vs[0].status.last_handled_activate_request, "");
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1))};
  Apply(Decide(Inputs(vs, ts)), vs);
  EXPECT_EQ(vs[0].status.phase, Phase::kActive);
  EXPECT_EQ(vs[0].status.last_handled_activate_request, kReq1);
  EXPECT_TRUE(Of(Decide(Inputs(vs, ts)), Action::Type::kStartTask).empty());
}

TEST(ActivateRequestTest, FailedRequestPublishIsReportedNotRetried) {
  auto [vs, ts] = V1SupersededByV2();
  vs[0].activate_request = kReq1;
  TaskObservation failed =
      RequestTask(vs[0], State::kFailed, R"({"error":"file vanished","code":"NotFound"})");
  failed.reason = "BackoffLimitExceeded";
  ts.push_back(failed);
  auto d = Decide(Inputs(vs, ts));
  Apply(d, vs);
  EXPECT_EQ(vs[0].status.phase, Phase::kSuperseded);
  EXPECT_EQ(vs[1].status.phase, Phase::kActive);
  EXPECT_NE(vs[0].status.message.find("publish failed"), std::string::npos);
  EXPECT_NE(vs[0].status.message.find("file vanished"), std::string::npos);
  EXPECT_EQ(vs[0].status.last_handled_activate_request, kReq1);
  EXPECT_EQ(Warnings(d, "ActivateRequestFailed").size(), 1u);
  ts.pop_back();  // the failed Job expires: the status alone keeps it from running again
  EXPECT_TRUE(Of(Decide(Inputs(vs, ts)), Action::Type::kStartTask).empty());
}

// Review finding: a request on the active version made while another publish runs must wait,
// not be recorded as already done (the running publish is about to change the active version).
TEST(ActivateRequestTest, RequestWhileAnotherPublishRunsWaitsForIt) {
  auto [vs, ts] = V1SupersededByV2();
  vs[0].activate_request = kReq1;
  ts.push_back(RequestTask(vs[0], State::kRunning, ""));
  vs[1].activate_request = kReq2;  // "undo": back to v2, while v1's publish still runs
  auto d = Decide(Inputs(vs, ts));
  Apply(d, vs);
  EXPECT_EQ(vs[1].status.last_handled_activate_request, "") << "must stay pending";
  EXPECT_TRUE(Of(d, Action::Type::kStartTask).empty());
  ts.back() = RequestTask(vs[0], State::kSucceeded, R"({"manifest_generation":3})");
  const Decision d2 = Decide(Inputs(vs, ts));
  Apply(d2, vs);
  ASSERT_EQ(vs[0].status.phase, Phase::kActive);
  auto tasks = Of(d2, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u) << "v2's request is acted on once v1's publish is done";
  EXPECT_EQ(tasks[0]->mv.name, "ranker-v2");
  EXPECT_EQ(tasks[0]->task_request, (ActivateRequest{kReq2, 0}));
}

// Review finding: R1 -> R2 -> R1 (a revert) while R1's first Job is still around is a third
// request, not the first one again.
TEST(ActivateRequestTest, AValueAskedAgainLaterIsANewRequest) {
  auto [vs, ts] = V1SupersededByV2();
  vs[0].activate_request = kReq1;
  ts.push_back(RequestTask(vs[0], State::kSucceeded, R"({"manifest_generation":3})"));
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[1].activate_request = kReq1;
  ts.push_back(RequestTask(vs[1], State::kSucceeded, R"({"manifest_generation":4})"));
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[0].activate_request = kReq2;
  ts.push_back(RequestTask(vs[0], State::kSucceeded, R"({"manifest_generation":5})"));
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[1].activate_request = kReq2;
  ts.push_back(RequestTask(vs[1], State::kSucceeded, R"({"manifest_generation":6})"));
  Apply(Decide(Inputs(vs, ts)), vs);
  ASSERT_EQ(vs[1].status.phase, Phase::kActive);
  ASSERT_EQ(vs[0].status.activate_requests_handled, 2);

  vs[0].activate_request = kReq1;  // reverted; its first Job (number 0) still exists
  const Decision d = Decide(Inputs(vs, ts));
  Apply(d, vs);
  EXPECT_EQ(vs[0].status.last_handled_activate_request, kReq2) << "the old Job is not this one";
  auto tasks = Of(d, Action::Type::kStartTask);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]->task_request, (ActivateRequest{kReq1, 2}));
  EXPECT_NE(tasks[0]->task_name, ts[2].name);
}

// Review finding: several requests pending at once (made while the model was busy): only the
// newest is acted on; the others are recorded as superseded, so pods do not swap through them.
TEST(ActivateRequestTest, NewestOfSeveralPendingRequestsWins) {
  for (bool times : {true, false}) {
    ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20), v3 = Mv("v3", 30);
    std::vector<ModelVersion> vs = {v1, v2, v3};
    std::vector<TaskObservation> ts;
    for (int i = 0; i < 3; ++i) {
      std::string v = "v" + std::to_string(i + 1);
      ts.push_back(Task(vs[i], TaskKind::kWrite, State::kSucceeded, WriteResult(v, i + 1)));
    }
    vs[2].retain = 3;
    Apply(Decide(Inputs(vs, ts)), vs);
    ASSERT_EQ(vs[2].status.phase, Phase::kActive);
    // v1 asked last (by its time), v2 before; without times, the newest-created (v2) wins.
    vs[0].activate_request = times ? kReq2 : "second";
    vs[1].activate_request = times ? kReq1 : "first";
    const Decision d = Decide(Inputs(vs, ts));
    Apply(d, vs);
    const std::string winner = times ? "ranker-v1" : "ranker-v2";
    const std::string loser = times ? "ranker-v2" : "ranker-v1";
    auto tasks = Of(d, Action::Type::kStartTask);
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(tasks[0]->mv.name, winner);
    const ModelVersion& lost = vs[times ? 1 : 0];
    EXPECT_EQ(lost.status.last_handled_activate_request, lost.activate_request) << loser;
    bool superseded = false;
    for (const Action* e : Of(d, Action::Type::kEvent))
      superseded |= e->reason == "ActivateRequestSuperseded" && e->mv.name == loser;
    EXPECT_TRUE(superseded);
  }
}

TEST(ActivateRequestTest, RequestTaskNamesAreShortAndDistinct) {
  std::string name(80, 'a');
  std::string t1 = TaskName(name, TaskKind::kPublish, 12, {kReq1, 0});
  EXPECT_LE(t1.size(), 63u);
  EXPECT_EQ(t1, TaskName(name, TaskKind::kPublish, 12, {kReq1, 0}));
  EXPECT_NE(t1, TaskName(name, TaskKind::kPublish, 12, {kReq2, 0}));
  EXPECT_NE(t1, TaskName(name, TaskKind::kPublish, 12, {kReq1, 2})) << "the same value, later";
  EXPECT_NE(t1, TaskName(name, TaskKind::kPublish, 12));
  EXPECT_EQ(TaskName("m", TaskKind::kWrite, 1, {kReq1, 0}), "m-write") << "only publishes";
}

}  // namespace
}  // namespace modelswap::op
