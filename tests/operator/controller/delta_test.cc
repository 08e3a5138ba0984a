// Delta versions in the controller: the writer's arguments (task and Job), waiting for the base
// (Pending, with WaitingForBase, or Stalled when the base is missing, failed or a loop), the
// writer's chain copied into status, and retention and deletion keeping a base that a kept
// delta reads through (and a `remove` the sidecar refused, said once). Also a full version's
// layout base (spec.source.base, `write --base`) and the delta chunks its writer reports.
#include <gtest/gtest.h>

#include <algorithm>

#include "operator/controller/job.h"
#include "operator/controller/reconciler.h"
#include "tests/operator/controller/reconciler_fixtures.h"

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

// Version `version` of ranker as a delta on `base` (changes in changes/<version>.tsv).
ModelVersion DeltaMv(const std::string& version, const std::string& base, int64_t created_s,
                     Json chain = nullptr) {
  ModelVersion mv = Mv(version, created_s);
  Json obj = *mv.raw;
  obj["spec"]["source"] = {
      {"delta", {{"base", base}, {"tsv", {{"path", "changes/" + version + ".tsv"}}}}}};
  if (!chain.is_null()) obj["spec"]["chain"] = chain;
  auto parsed = ParseModelVersion(obj);
  EXPECT_TRUE(parsed.has_value()) << parsed.error().ToString();
  return *parsed;
}

// A delta writer's result (sidecar/commands/file_commands.cc): delta, chain newest first.
std::string DeltaResult(const std::string& v, int gen, const std::vector<std::string>& chain) {
  Json layers = Json::array();
  for (const auto& l : chain)
    layers.push_back({{"version", l}, {"bytes", l == chain.back() ? 4096 : 100}});
  return Json({{"path", "/models/ranker/versions/" + v + ".msf"},
               {"bytes", 100},
               {"checksum", "xxh3:00000000000000" + v},
               {"manifest_generation", gen},
               {"delta",
                {{"base", chain.size() > 1 ? chain[1] : ""},
                 {"chainDepth", static_cast<int>(chain.size()) - 1}}},
               {"chain", layers}})
      .dump();
}

const ModelVersionStatus* StatusOf(const Decision& d, const std::string& name) {
  for (const Action* a : Of(d, Action::Type::kWriteStatus)) {
    if (a->mv.name == name) return &a->status;
  }
  return nullptr;
}

std::string Cond(const ModelVersionStatus& s, const std::string& type, bool message = false) {
  const Condition* c = s.FindCondition(type);
  if (c == nullptr) return "(none)";
  return message ? c->message : c->status + "/" + c->reason;
}

std::vector<std::string> Started(const Decision& d) {
  std::vector<std::string> out;
  for (const Action* a : Of(d, Action::Type::kStartTask))
    out.push_back(a->task_name);
  return out;
}

const Action* EventWith(const Decision& d, const std::string& reason) {
  for (const Action* a : Of(d, Action::Type::kEvent)) {
    if (a->reason == reason) return a;
  }
  return nullptr;
}

TEST(DeltaTest, WriterArgsForADelta) {
  ModelVersion mv = DeltaMv("v8", "v7", 10);
  EXPECT_EQ(TaskArgs(mv, TaskKind::kWrite, "/models"),
            (std::vector<std::string>{
                "write", "--root", "/models", "--model", "ranker", "--version", "v8", "--delta-on",
                "v7", "--from-tsv", "/models/changes/v8.tsv", "--auto-compact", "--max-chain", "4",
                "--compact-ratio", "0.5", "--reuse-existing", "--publish"}));
  ModelVersion tuned = DeltaMv("v8", "v7", 10, {{"maxDeltas", 2}, {"compactRatio", 0.25}});
  auto args = TaskArgs(tuned, TaskKind::kWrite, "/models");
  auto at = [&](const std::string& flag) {
    auto it = std::find(args.begin(), args.end(), flag);
    return it == args.end() || it + 1 == args.end() ? std::string("(missing)") : *(it + 1);
  };
  EXPECT_EQ(at("--max-chain"), "2");
  EXPECT_EQ(at("--compact-ratio"), "0.25");
  // publish and remove of a delta take no source arguments.
  EXPECT_EQ(TaskArgs(mv, TaskKind::kRemove, "/models").size(), 7u);
}

TEST(DeltaTest, JobCarriesTheDeltaArgs) {
  ModelVersion mv = DeltaMv("v8", "v7", 10);
  Json job = BuildJob(mv, TaskKind::kWrite, "ranker-v8-write", WriterPodOptions{});
  const Json args = job["spec"]["template"]["spec"]["containers"][0]["args"];
  auto has = [&](const std::string& flag, const std::string& value) {
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == flag && args[i + 1] == value) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("--delta-on", "v7")) << args.dump();
  EXPECT_TRUE(has("--from-tsv", "/models/changes/v8.tsv")) << args.dump();
  EXPECT_TRUE(has("--max-chain", "4")) << args.dump();
  EXPECT_TRUE(has("--compact-ratio", "0.5")) << args.dump();
  EXPECT_NE(std::find(args.begin(), args.end(), "--auto-compact"), args.end()) << args.dump();
}

// A full version laid out on another (spec.source.base) applied together with it: its writer
// waits until the layout base is written, then runs with --base.
TEST(DeltaTest, LayoutBaseAppliedTogetherIsWrittenFirst) {
  ModelVersion v8 = Mv("v8", 10);
  v8.source.layout_base = "v7";
  std::vector<ModelVersion> vs = {v8, Mv("v7", 20)};
  auto d = Decide(Inputs(vs));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v7-write"});
  const ModelVersionStatus* s = StatusOf(d, "ranker-v8");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->phase, Phase::kPending);
  EXPECT_EQ(Cond(*s, "Written"), "False/WaitingForBase");
  EXPECT_NE(Cond(*s, "Written", true).find("layout base v7 (ModelVersion ranker-v7)"),
            std::string::npos);
  Apply(d, vs);
  std::vector<TaskObservation> ts = {
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, WriteResult("v7", 1))};
  d = Decide(Inputs(vs, ts));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v8-write"});
  // A layout base with no ModelVersion here is not waited for: the writer looks on the volume.
  ModelVersion v9 = Mv("v9", 30);
  v9.source.layout_base = "v1";
  d = Decide(Inputs({v9}));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v9-write"});
}

// Applied before its base (GitOps tools apply a folder in any order): the delta waits, the base
// is written first, then the delta.
TEST(DeltaTest, DeltaCreatedBeforeItsBaseWaitsForIt) {
  std::vector<ModelVersion> vs = {DeltaMv("v8", "v7", 10), Mv("v7", 20)};
  auto d = Decide(Inputs(vs));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v7-write"});
  const ModelVersionStatus* s = StatusOf(d, "ranker-v8");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->phase, Phase::kPending);
  EXPECT_EQ(Cond(*s, "Written"), "False/WaitingForBase");
  EXPECT_NE(Cond(*s, "Written", true).find("v7 (ModelVersion ranker-v7)"), std::string::npos);
  EXPECT_EQ(Cond(*s, "Ready"), "False/WaitingForBase");
  EXPECT_EQ(Cond(*s, "Reconciling"), "True/WaitingForBase");
  EXPECT_EQ(Cond(*s, "Stalled"), "(none)");
  const Action* ev = EventWith(d, "WaitingForBase");
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->event_type, "Normal");
  Apply(d, vs);
  // The base's writer runs: nothing else starts, and the wait is not announced again.
  std::vector<TaskObservation> ts = {Task(vs[1], TaskKind::kWrite, State::kRunning)};
  d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Started(d).empty());
  EXPECT_EQ(EventWith(d, "WaitingForBase"), nullptr);
  // The base is written: the delta's writer starts in the same pass.
  ts = {Task(vs[1], TaskKind::kWrite, State::kSucceeded, WriteResult("v7", 1))};
  d = Decide(Inputs(vs, ts));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v8-write"});
  ASSERT_NE(StatusOf(d, "ranker-v8"), nullptr);
  EXPECT_EQ(StatusOf(d, "ranker-v8")->phase, Phase::kWriting);
}

TEST(DeltaTest, MissingBaseStallsNamingIt) {
  std::vector<ModelVersion> vs = {Mv("v1", 5), DeltaMv("v8", "v7", 10)};
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1))};
  auto d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Started(d).empty());
  const ModelVersionStatus* s = StatusOf(d, "ranker-v8");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->phase, Phase::kPending);  // not Failed: creating v7 lets it go on
  EXPECT_EQ(Cond(*s, "Stalled"), "True/BaseMissing");
  EXPECT_EQ(Cond(*s, "Reconciling"), "(none)");
  EXPECT_NE(Cond(*s, "Ready", true).find("base version v7 of model ranker"), std::string::npos);
  const Action* ev = EventWith(d, "BaseMissing");
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->event_type, "Warning");
  // Once the base appears, the delta waits for it like any other.
  Apply(d, vs);
  vs.push_back(Mv("v7", 20));
  d = Decide(Inputs(vs, ts));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v7-write"});
  EXPECT_EQ(Cond(*StatusOf(d, "ranker-v8"), "Stalled"), "(none)");
  EXPECT_EQ(Cond(*StatusOf(d, "ranker-v8"), "Written"), "False/WaitingForBase");
}

TEST(DeltaTest, FailedBaseStallsItsDeltasNamingIt) {
  std::vector<ModelVersion> vs = {Mv("v7", 10), DeltaMv("v8", "v7", 20), DeltaMv("v9", "v8", 30)};
  TaskObservation failed = Task(vs[0], TaskKind::kWrite, State::kFailed);
  failed.reason = "BackoffLimitExceeded";
  auto d = Decide(Inputs(vs, {failed}));
  EXPECT_TRUE(Started(d).empty());
  const ModelVersionStatus* v8 = StatusOf(d, "ranker-v8");
  const ModelVersionStatus* v9 = StatusOf(d, "ranker-v9");
  ASSERT_TRUE(v8 != nullptr && v9 != nullptr);
  EXPECT_EQ(Cond(*v8, "Stalled"), "True/BaseFailed");
  EXPECT_NE(Cond(*v8, "Ready", true).find("base v7 (ModelVersion ranker-v7) failed"),
            std::string::npos);
  // v9's base v8 waits on a failed base itself: v9 is stalled too, and says why.
  EXPECT_EQ(Cond(*v9, "Stalled"), "True/BaseFailed");
  EXPECT_NE(Cond(*v9, "Ready", true).find("v8 (ModelVersion ranker-v8) cannot be written"),
            std::string::npos);
}

TEST(DeltaTest, DeltasNamingEachOtherStall) {
  std::vector<ModelVersion> vs = {DeltaMv("v8", "v9", 10), DeltaMv("v9", "v8", 20)};
  auto d = Decide(Inputs(vs));
  EXPECT_TRUE(Started(d).empty());
  for (const char* name : {"ranker-v8", "ranker-v9"}) {
    ASSERT_NE(StatusOf(d, name), nullptr);
    EXPECT_EQ(Cond(*StatusOf(d, name), "Stalled"), "True/DeltaCycle") << name;
  }
  EXPECT_NE(Cond(*StatusOf(d, "ranker-v8"), "Ready", true).find("v8 -> v9 -> v8"),
            std::string::npos);
}

TEST(DeltaTest, WriterChainIsCopiedIntoStatus) {
  std::vector<ModelVersion> vs = {Mv("v7", 10), DeltaMv("v8", "v7", 20)};
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v7", 1)),
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, DeltaResult("v8", 2, {"v8", "v7"}))};
  auto d = Decide(Inputs(vs, ts));
  const ModelVersionStatus* s = StatusOf(d, "ranker-v8");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->phase, Phase::kActive);
  EXPECT_EQ(s->chain_length, 2);
  EXPECT_EQ(s->chain_layers, (std::vector<ChainLayerStatus>{{"v8", 100}, {"v7", 4096}}));
  EXPECT_FALSE(s->chain_compacted);
  EXPECT_EQ(StatusToJson(*s)["chain"]["length"], 2);  // the Chain printer column
  // An older writer (no chain) still shows the depth it reported.
  ts[1].result = R"({"path":"/m/v8.msf","bytes":1,"checksum":"xxh3:01","manifest_generation":2,)"
                 R"("delta":{"base":"v7","chainDepth":1}})";
  EXPECT_EQ(StatusOf(Decide(Inputs(vs, ts)), "ranker-v8")->chain_length, 2);
  // Compacted: a full version of one layer.
  ts[1].result = Json({{"path", "/m/v8.msf"},
                       {"bytes", 5000},
                       {"checksum", "xxh3:02"},
                       {"manifest_generation", 2},
                       {"compacted", true},
                       {"chain", {{{"version", "v8"}, {"bytes", 5000}}}}})
                     .dump();
  s = StatusOf(Decide(Inputs(vs, ts)), "ranker-v8");
  EXPECT_TRUE(s->chain_compacted);
  EXPECT_EQ(s->chain_length, 1);
}

// v1 full; v2 a delta on v1; v3, v4 full (v4 active); retain 1. v3 is kept by retain; v2 is not
// but a pod still serves it: v1 must stay too. Once v2 is unloaded it goes first; v1 stays while
// v2's file is there, then goes.
TEST(DeltaTest, RetentionKeepsABaseUntilItsDeltaIsGone) {
  std::vector<ModelVersion> vs = {Mv("v1", 10), DeltaMv("v2", "v1", 20), Mv("v3", 30),
                                  Mv("v4", 40)};
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1)),
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, DeltaResult("v2", 2, {"v2", "v1"})),
      Task(vs[2], TaskKind::kWrite, State::kSucceeded, WriteResult("v3", 3)),
      Task(vs[3], TaskKind::kWrite, State::kSucceeded, WriteResult("v4", 4))};
  auto in = Inputs(vs, ts);
  in.load = ModelLoad{true, 2, {{"v4", 1}, {"v2", 1}}};
  auto d = Decide(in);
  EXPECT_TRUE(Started(d).empty()) << Started(d)[0];
  EXPECT_NE(Cond(*StatusOf(d, "ranker-v1"), "Ready", true).find("base of delta v2"),
            std::string::npos);
  d = Decide(Inputs(vs, ts));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v2-remove"});
  Apply(d, vs);
  ts.push_back(Task(vs[1], TaskKind::kRemove, State::kSucceeded, R"({"removed":true})"));
  EXPECT_EQ(Started(Decide(Inputs(vs, ts))), std::vector<std::string>{"ranker-v1-remove"});
}

// The same without chain layers in status (an older writer): the spec's base is followed, and
// through a chain of two deltas.
TEST(DeltaTest, RetentionFollowsTheSpecWhenTheWriterSaidNoChain) {
  std::vector<ModelVersion> vs = {Mv("v1", 10), DeltaMv("v2", "v1", 20), DeltaMv("v3", "v2", 30)};
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1)),
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, WriteResult("v2", 2)),
      Task(vs[2], TaskKind::kWrite, State::kSucceeded, WriteResult("v3", 3))};
  auto d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Started(d).empty()) << Started(d)[0];  // v3 (active) reads v2 and v1
}

// A version compacted by its writer is full: its spec's base may go.
TEST(DeltaTest, CompactedVersionNeedsNoBase) {
  std::vector<ModelVersion> vs = {Mv("v1", 10), DeltaMv("v2", "v1", 20), Mv("v3", 30)};
  const std::string compacted =
      R"({"path":"/m/v2.msf","bytes":5000,"checksum":"xxh3:02","manifest_generation":2,)"
      R"("compacted":true,"chain":[{"version":"v2","bytes":5000}]})";
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1)),
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, compacted),
      Task(vs[2], TaskKind::kWrite, State::kSucceeded, WriteResult("v3", 3))};
  EXPECT_EQ(Started(Decide(Inputs(vs, ts))), std::vector<std::string>{"ranker-v1-remove"});
}

TEST(DeltaTest, DeletedBaseKeepsItsFileForALiveDelta) {
  std::vector<ModelVersion> vs = {Mv("v1", 10), DeltaMv("v2", "v1", 20)};
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1)),
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, DeltaResult("v2", 2, {"v2", "v1"}))};
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[0].deleting = true;
  auto d = Decide(Inputs(vs, ts));
  EXPECT_TRUE(Started(d).empty());
  const Action* kept = EventWith(d, "FileKept");
  ASSERT_NE(kept, nullptr);
  EXPECT_NE(kept->message.find("base of delta v2"), std::string::npos);
  EXPECT_EQ(Of(d, Action::Type::kRemoveFinalizer).size(), 1u);
}

// Both deleted: the base's removal waits for the delta's, which then leaves nothing needing it.
TEST(DeltaTest, DeletedBaseWaitsForItsDeletedDelta) {
  std::vector<ModelVersion> vs = {Mv("v1", 10), DeltaMv("v2", "v1", 20), Mv("v3", 30)};
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v1", 1)),
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, DeltaResult("v2", 2, {"v2", "v1"})),
      Task(vs[2], TaskKind::kWrite, State::kSucceeded, WriteResult("v3", 3))};
  Apply(Decide(Inputs(vs, ts)), vs);
  vs[0].deleting = vs[1].deleting = true;
  auto d = Decide(Inputs(vs, ts));
  EXPECT_EQ(Started(d), std::vector<std::string>{"ranker-v2-remove"});
  const ModelVersionStatus* v1 = StatusOf(d, "ranker-v1");
  ASSERT_NE(v1, nullptr);
  EXPECT_EQ(Cond(*v1, "Deleting"), "True/WaitingForDeltas");
  for (const Action* a : Of(d, Action::Type::kRemoveFinalizer))
    EXPECT_NE(a->mv.name, "ranker-v1");
  // v2's file removed and v2 gone: v1's removal starts.
  vs.erase(vs.begin() + 1);
  EXPECT_EQ(Started(Decide(Inputs(vs, ts))), std::vector<std::string>{"ranker-v1-remove"});
}

// A delta the operator does not know of (written with the CLI) reads through v1: the sidecar
// refuses the removal. Said once with a Warning; the failed task is not run again while it
// exists (its Job's TTL), and the version stays Superseded with its file.
TEST(DeltaTest, RemovalRefusedByTheSidecarIsSaidOnce) {
  auto [vs, ts] = V1SupersededByV2();
  TaskObservation refused = Task(vs[0], TaskKind::kRemove, State::kFailed,
                                 R"({"error":"remove: v1 is the base of delta v9: remove or )"
                                 R"(compact v9 first","code":"FailedPrecondition"})");
  refused.reason = "BackoffLimitExceeded";
  ts.push_back(refused);
  auto d = Decide(Inputs(vs, ts));
  const Action* ev = EventWith(d, "RetentionRefused");
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->event_type, "Warning");
  EXPECT_NE(ev->message.find("v1 is the base of delta v9"), std::string::npos);
  EXPECT_TRUE(Started(d).empty());
  EXPECT_EQ(StatusOf(d, "ranker-v1")->phase, Phase::kSuperseded);
  Apply(d, vs);
  EXPECT_EQ(EventWith(Decide(Inputs(vs, ts)), "RetentionRefused"), nullptr);
}

// Version `version` of ranker from a TSV, laid out like `base` (spec.source.base).
ModelVersion LayoutBaseMv(const std::string& version, const std::string& base, int64_t created_s) {
  ModelVersion mv = Mv(version, created_s);
  Json obj = *mv.raw;
  obj["spec"]["source"] = {{"tsv", {{"path", "rows/" + version + ".tsv"}}}, {"base", base}};
  auto parsed = ParseModelVersion(obj);
  EXPECT_TRUE(parsed.has_value()) << parsed.error().ToString();
  return *parsed;
}

TEST(DeltaTest, WriterArgsForALayoutBase) {
  EXPECT_EQ(TaskArgs(LayoutBaseMv("v8", "v7", 10), TaskKind::kWrite, "/models"),
            (std::vector<std::string>{"write", "--root", "/models", "--model", "ranker",
                                      "--version", "v8", "--from-tsv", "/models/rows/v8.tsv",
                                      "--base", "v7", "--reuse-existing", "--publish"}));
  // No base, no flag; publish and remove take no source arguments.
  auto plain = TaskArgs(Mv("v8", 10), TaskKind::kWrite, "/models");
  EXPECT_EQ(std::find(plain.begin(), plain.end(), "--base"), plain.end());
  EXPECT_EQ(TaskArgs(LayoutBaseMv("v8", "v7", 10), TaskKind::kPublish, "/models").size(), 7u);
}

// A chunked write on a layout base (sidecar/commands/file_commands.cc, the write Report): its
// delta chunks and stored bytes reach status.chunks.
TEST(DeltaTest, WriterDeltaChunksAreCopiedIntoStatus) {
  const std::string result =
      R"({"path":"/models/ranker/versions/v8.recipe","bytes":4096,"checksum":"xxh3:08",)"
      R"("layout":"chunked","chunks":{"total":40,"new":3,"holes":1,"bytes_new":300,)"
      R"("bytes_reused":3700,"bytes_holes":96,"stored_bytes_new":45,"chunks_delta":2,)"
      R"("bytes_delta":200,"stored_bytes_delta":9},"chain":[{"version":"v8","bytes":4096}]})";
  auto r = ParseTaskResult(result);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->chunks_delta, 2);
  EXPECT_EQ(r->stored_bytes_new, 45);
  std::vector<ModelVersion> vs = {Mv("v7", 10), LayoutBaseMv("v8", "v7", 20)};
  std::vector<TaskObservation> ts = {
      Task(vs[0], TaskKind::kWrite, State::kSucceeded, WriteResult("v7", 1)),
      Task(vs[1], TaskKind::kWrite, State::kSucceeded, result)};
  const Decision d = Decide(Inputs(vs, ts));  // StatusOf points into it
  const ModelVersionStatus* s = StatusOf(d, "ranker-v8");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->chunks_new, 3);
  EXPECT_EQ(s->chunks_delta, 2);
  EXPECT_EQ(s->stored_bytes_new, 45);
  const Json j = StatusToJson(*s);
  EXPECT_EQ(j["chunks"]["delta"], 2);
  EXPECT_EQ(j["chunks"]["storedBytesNew"], 45);
}

// Standalone mode runs the sidecar without a termination log: its error is the stderr line.
TEST(DeltaTest, SidecarErrorLineIsAResult) {
  auto r = ParseTaskResult(
      "some log\nmodelswap-sidecar: FailedPrecondition: v1 is the base of delta v2: remove or "
      "compact v2 first\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, "FailedPrecondition");
  EXPECT_EQ(r->error, "v1 is the base of delta v2: remove or compact v2 first");
  EXPECT_FALSE(ParseTaskResult("modelswap-sidecar: not a code: x\n").has_value());
  EXPECT_FALSE(ParseTaskResult("xmodelswap-sidecar: NotFound: x\n").has_value());
}

}  // namespace
}  // namespace modelswap::op
