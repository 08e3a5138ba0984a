// The Ready condition (with kstatus' Reconciling and Stalled) that sums a ModelVersion's status
// up, and write progress in status: parsed from the writer pod, polled by the prober, written at
// most once per interval by the reconciler.
#include <gtest/gtest.h>

#include "operator/controller/conditions.h"
#include "operator/controller/writer_progress.h"
#include "tests/operator/controller/reconciler_fixtures.h"

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

const Condition* Cond(const ModelVersionStatus& s, const std::string& type) {
  return s.FindCondition(type);
}

// Every condition carries the generation decided on; Ready is set on every status write.
void ExpectSummary(const Decision& d, const std::string& name, const std::string& ready,
                   const std::string& reason, const std::string& message_part) {
  bool found = false;
  for (const Action* a : Of(d, Action::Type::kWriteStatus)) {
    if (a->mv.name != name) continue;
    found = true;
    const Condition* r = Cond(a->status, "Ready");
    ASSERT_NE(r, nullptr) << name;
    EXPECT_EQ(r->status, ready) << name;
    EXPECT_EQ(r->reason, reason) << name;
    EXPECT_NE(r->message.find(message_part), std::string::npos) << r->message;
    for (const Condition& c : a->status.conditions) {
      EXPECT_EQ(c.observed_generation, a->mv.generation) << c.type;
      EXPECT_FALSE(c.reason.empty()) << c.type;  // the CRD requires one
    }
    const bool reconciling = Cond(a->status, "Reconciling") != nullptr;
    const bool stalled = Cond(a->status, "Stalled") != nullptr;
    if (ready == "True") {
      EXPECT_FALSE(reconciling || stalled) << name;
    } else {
      EXPECT_NE(reconciling, stalled) << name << ": exactly one of Reconciling, Stalled";
    }
  }
  EXPECT_TRUE(found) << "no status write for " << name;
}

TEST(StatusSummaryTest, ReadyFollowsTheVersionThroughItsLife) {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20);
  std::vector<ModelVersion> vs = {v1, v2};
  // v1 starts writing; v2 waits its turn and says for what.
  Decision d = Decide(Inputs(vs));
  ExpectSummary(d, "ranker-v1", "False", "Writing", "write task ranker-v1-write");
  ExpectSummary(d, "ranker-v2", "False", "Pending", "one task at a time");
  Apply(d, vs);
  // v1 written and published: Ready with no injected pods yet.
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1))};
  d = Decide(Inputs(vs, ts));
  ExpectSummary(d, "ranker-v1", "True", "Active", "no injected pod");
  Apply(d, vs);
  // Pods still loading: not Ready, and says how many have it.
  ModelInputs in = Inputs(vs, ts);
  in.load = ModelLoad{true, 3, {{"v1", 1}}};
  d = Decide(in);
  ExpectSummary(d, "ranker-v1", "False", "Loading", "1/3 pods");
}

TEST(StatusSummaryTest, PendingNamesTheTaskItWaitsFor) {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20);
  std::vector<ModelVersion> vs = {v1, v2};
  std::vector<TaskObservation> ts = {Task(v1, TaskKind::kWrite, State::kRunning)};
  Decision d = Decide(Inputs(vs, ts));
  ExpectSummary(d, "ranker-v2", "False", "Pending", "write task ranker-v1-write runs now");
}

TEST(StatusSummaryTest, FailedWriteIsStalled) {
  ModelVersion v1 = Mv("v1", 10);
  std::vector<TaskObservation> ts = {Task(v1, TaskKind::kWrite, State::kFailed)};
  ts[0].reason = "BackoffLimitExceeded";
  Decision d = Decide(Inputs({v1}, ts));
  ExpectSummary(d, "ranker-v1", "False", "WriteFailed", "");
  for (const Action* a : Of(d, Action::Type::kWriteStatus)) {
    ASSERT_NE(Cond(a->status, "Stalled"), nullptr);
    EXPECT_EQ(Cond(a->status, "Stalled")->status, "True");
  }
}

TEST(StatusSummaryTest, SupersededAndUnpublishedVersionsAreReady) {
  auto [vs, ts] = V1SupersededByV2();
  Decision d = Decide(Inputs(vs, ts));  // nothing changed: nothing written
  EXPECT_TRUE(Of(d, Action::Type::kWriteStatus).empty());
  const Condition* r = Cond(vs[0].status, "Ready");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status, "True");
  EXPECT_EQ(r->reason, "Superseded");
  ModelVersion off = Mv("v3", 30, /*activate=*/false);
  d = Decide(Inputs({off}, {Task(off, TaskKind::kWrite, State::kSucceeded, WriteResult("v3", 0))}));
  ExpectSummary(d, "ranker-v3", "True", "Written", "spec.activate is false");
}

TEST(StatusSummaryTest, DeletionIsNotReadyAndSaysWhatItWaitsFor) {
  auto [vs, ts] = V1SupersededByV2();
  vs[0].deleting = true;
  Decision d = Decide(Inputs(vs, ts));
  ExpectSummary(d, "ranker-v1", "False", "Deleting", "remove task");
}

TEST(StatusSummaryTest, ReadyKeepsItsTransitionTimeWhileUnchanged) {
  auto [vs, ts] = V1SupersededByV2();
  ModelInputs later = Inputs(vs, ts);
  later.now_unix_ns += 60'000'000'000;
  later.load = ModelLoad{true, 2, {{"v2", 2}}};  // pods report: status changes, Ready stays True
  Decision d = Decide(later);
  auto writes = Of(d, Action::Type::kWriteStatus);
  ASSERT_FALSE(writes.empty());
  for (const Action* a : writes) {
    EXPECT_EQ(Cond(a->status, "Ready")->last_transition_time,
              Cond(a->mv.status, "Ready")->last_transition_time);
  }
}

// Unreachable agents: AgentsReachable False on the active version with a count and an example,
// and Ready False with that reason (not Healthy while what some pods serve is unknown); back
// to True, and Ready with it, once every agent answers. Absent while no pod serves the model,
// and on versions other than the active one.
TEST(StatusSummaryTest, UnreachableAgentsSetAgentsReachableBothWays) {
  auto [vs, ts] = V1SupersededByV2();
  for (const auto& v : vs)
    EXPECT_EQ(Cond(v.status, "AgentsReachable"), nullptr) << "no pods yet";
  ModelInputs in = Inputs(vs, ts);
  in.load = ModelLoad{false, 3, {{"v2", 2}}};
  in.load.unreachable = 1;
  in.load.unreachable_example = "default/ranker-abc: connect: Connection refused";
  Decision d = Decide(in);
  ExpectSummary(d, "ranker-v2", "False", "AgentsUnreachable",
                "1 of 3 agents did not answer (e.g. default/ranker-abc: connect: Connection "
                "refused): rollout status incomplete, retention paused");
  ExpectSummary(d, "ranker-v1", "True", "Superseded", "");
  for (const Action* a : Of(d, Action::Type::kWriteStatus)) {
    const Condition* c = Cond(a->status, "AgentsReachable");
    if (a->mv.name == "ranker-v1") {
      EXPECT_EQ(c, nullptr) << "only the active version carries it";
      continue;
    }
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->status, "False");
    EXPECT_EQ(c->reason, "AgentsUnreachable");
    ASSERT_NE(Cond(a->status, "Reconciling"), nullptr) << "a pod may answer again: not Stalled";
  }
  Apply(d, vs);
  in = Inputs(vs, ts);
  in.load = ModelLoad{true, 3, {{"v2", 3}}};
  d = Decide(in);
  ExpectSummary(d, "ranker-v2", "True", "Active", "3/3 pods");
  for (const Action* a : Of(d, Action::Type::kWriteStatus)) {
    if (a->mv.name != "ranker-v2") continue;
    const Condition* c = Cond(a->status, "AgentsReachable");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->status, "True");
    EXPECT_EQ(c->reason, "AgentsAnswered");
  }
  Apply(d, vs);
  // Every pod gone: nothing to reach, the condition goes.
  in = Inputs(vs, ts);
  in.load = ModelLoad{true, 0, {}};
  d = Decide(in);
  Apply(d, vs);
  EXPECT_EQ(Cond(vs[1].status, "AgentsReachable"), nullptr);
}

// --- progress ---

TEST(WriteProgressTest, ParsesTheWritersAnswerAndRefusesGarbage) {
  auto p = ParseWriterProgress(
      R"({"model":"ranker","version":"v1","bytes_written":1024,"bytes_total":4096,"finished":false})");
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->written, 1024);
  EXPECT_EQ(p->total, 4096);
  for (const char* bad : {"", "[]", "{}", R"({"bytes_written":"1"})", R"({"bytes_written":-1})"}) {
    EXPECT_FALSE(ParseWriterProgress(bad).has_value()) << bad;
  }
}

Json WriterPod(const std::string& job, const std::string& phase, const std::string& task = "write",
               int port = 8472) {
  Json c = {{"name", "writer"}};
  if (port > 0) c["ports"] = {{{"name", "progress"}, {"containerPort", port}}};
  return {{"metadata",
           {{"name", job + "-abcde"},
            {"namespace", "default"},
            {"labels", {{"job-name", job}, {kLabelTask, task}, {kLabelModel, "ranker"}}}}},
          {"spec", {{"containers", {c}}}},
          {"status", {{"phase", phase}, {"podIP", "10.0.0.7"}}}};
}

TEST(WriteProgressTest, OnlyRunningWritePodsWithAProgressPortAreAsked) {
  EXPECT_EQ(WriterProgressUrl(WriterPod("j", "Running")), "http://10.0.0.7:8472");
  EXPECT_EQ(WriterProgressUrl(WriterPod("j", "Pending")), "");
  EXPECT_EQ(WriterProgressUrl(WriterPod("j", "Running", "publish")), "");
  EXPECT_EQ(WriterProgressUrl(WriterPod("j", "Running", "write", 0)), "");
}

TEST(WriteProgressTest, ProberReportsChangesPerModelAndForgetsGonePods) {
  Store pods;
  pods.Upsert(WriterPod("ranker-v1-write", "Running"));
  int64_t written = 100;
  std::vector<std::string> changed;
  WriterProgressProber prober(
      &pods, [&](const std::string& key) { changed.push_back(key); }, std::chrono::seconds(5),
      [&](const std::string& url) -> Result<std::string> {
        EXPECT_EQ(url, "http://10.0.0.7:8472");
        return R"({"bytes_written":)" + std::to_string(written) + R"(,"bytes_total":1000})";
      });
  prober.ProbeOnce();
  EXPECT_EQ(changed, std::vector<std::string>{"default/ranker"});
  ASSERT_TRUE(prober.For("default/ranker-v1-write").has_value());
  EXPECT_EQ(prober.For("default/ranker-v1-write")->written, 100);
  prober.ProbeOnce();  // same figure: no change reported
  EXPECT_EQ(changed.size(), 1u);
  written = 600;
  prober.ProbeOnce();
  EXPECT_EQ(changed.size(), 2u);
  EXPECT_EQ(prober.For("default/ranker-v1-write")->written, 600);
  pods.Delete(WriterPod("ranker-v1-write", "Running"));
  prober.ProbeOnce();
  EXPECT_FALSE(prober.For("default/ranker-v1-write").has_value());
}

ModelInputs Writing(ModelVersion& v1, int64_t written, int64_t now_offset_s) {
  TaskObservation t = Task(v1, TaskKind::kWrite, State::kRunning);
  t.progress = TaskProgress{written, 4ll << 30};
  ModelInputs in = Inputs({v1}, {t});
  in.now_unix_ns += now_offset_s * 1'000'000'000;
  in.progress_interval_ns = 5'000'000'000;
  return in;
}

const ModelVersionStatus* Written(const Decision& d) {
  auto w = Of(d, Action::Type::kWriteStatus);
  return w.empty() ? nullptr : &w[0]->status;
}

TEST(WriteProgressTest, ReconcilerWritesProgressAtMostOncePerInterval) {
  ModelVersion v1 = Mv("v1", 10);
  v1.status.phase = Phase::kWriting;
  // First figure: written at once, with percent and Ready's message.
  Decision d = Decide(Writing(v1, 1ll << 30, 0));
  const ModelVersionStatus* s = Written(d);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->progress.has_value());
  EXPECT_EQ(s->progress->bytes_written, 1ll << 30);
  EXPECT_EQ(s->progress->bytes_total, 4ll << 30);
  EXPECT_EQ(s->progress->percent, "25%");
  EXPECT_NE(Cond(*s, "Ready")->message.find("1.0 GiB of 4.0 GiB (25%)"), std::string::npos)
      << Cond(*s, "Ready")->message;
  v1.status = *s;
  // A new figure 2 s later is held back (no write), with a requeue for when it is due.
  d = Decide(Writing(v1, 2ll << 30, 2));
  EXPECT_EQ(Written(d), nullptr);
  ASSERT_TRUE(d.requeue_after.has_value());
  EXPECT_LE(*d.requeue_after, std::chrono::seconds(4));
  // 6 s after the first: written.
  d = Decide(Writing(v1, 3ll << 30, 6));
  s = Written(d);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->progress->bytes_written, 3ll << 30);
  EXPECT_EQ(s->progress->percent, "75%");
  v1.status = *s;
  // Never 100% while the task runs (the file is still synced and renamed).
  d = Decide(Writing(v1, 4ll << 30, 12));
  EXPECT_EQ(Written(d)->progress->percent, "99%");
  // Finished: progress cleared at once, whatever the interval.
  v1.status = *Written(d);
  ModelInputs done =
      Inputs({v1}, {Task(v1, TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1))});
  done.now_unix_ns += 13'000'000'000;
  s = Written(Decide(done));
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->progress.has_value());
  EXPECT_EQ(s->phase, Phase::kActive);
}

}  // namespace
}  // namespace modelswap::op
