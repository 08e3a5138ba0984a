// A ModelVersion's life as users drive it, with the operator in this process: create (finalizer,
// writer Job with the right spec, status and conditions, Events), update (a spec change is a new
// generation the status follows), delete (its own running writer is cancelled, the finalizer
// released, nothing hangs); plus the API rules the reconciler relies on.
#include <gtest/gtest.h>

#include <map>

#include "operator/api/well_known.h"
#include "tests/e2e/e2e_fixture.h"

namespace modelswap::op::e2e {
namespace {

class E2eLifecycle : public E2ETest {};

std::string ConditionReason(const Json& mv, const std::string& type) {
  for (const auto& c : Field<Json>(mv, {"status", "conditions"}, Json::array())) {
    if (Field<std::string>(c, {"type"}) == type)
      return Field<std::string>(c, {"status"}) + "/" + Field<std::string>(c, {"reason"});
  }
  return "";
}

TEST_F(E2eLifecycle, CreateUpdateDelete) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  InProcessOperator op(client_.get(), ns_);
  ASSERT_TRUE(op.Start());
  const std::string model = "life-" + RandomSuffix(), name = model + "-v1";
  auto created = client_->Create(kModelVersions, ns_, Mv(name, model, "v1"));
  ASSERT_TRUE(created.has_value()) << created.error().ToString();

  // The writer Job, as job.h builds it, owned by the ModelVersion.
  const std::string job_name = name + "-write";
  Json job = WaitForJob(job_name, std::chrono::seconds(30));
  ASSERT_FALSE(job.is_null());
  const Json& c = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], kSidecarImage);
  EXPECT_EQ(c["args"][0], "write");
  EXPECT_EQ(c["terminationMessagePolicy"], "FallbackToLogsOnError");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["uid"], UidOf(*created));
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(LabelOf(job, kLabelManagedBy), kManagedBy);
  EXPECT_EQ(LabelOf(job, kLabelOwner), name);
  EXPECT_EQ(job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "models");
  EXPECT_EQ(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

  // Finalizer, phase Writing, conditions for generation 1.
  ASSERT_TRUE(
      Eventually("finalizer and phase Writing", std::chrono::seconds(30), [&](std::string& seen) {
        seen = MvSummary(name);
        auto o = client_->Get(kModelVersions, ns_, name);
        return o && HasFinalizer(*o, kFinalizer) &&
               Field<std::string>(*o, {"status", "phase"}) == "Writing" &&
               Field<std::string>(*o, {"status", "jobName"}) == job_name &&
               Field<int64_t>(*o, {"status", "observedGeneration"}) == 1 &&
               ConditionReason(*o, "Written") == "False/Writing";
      }));
  Json mv = GetOr(kModelVersions, name);
  for (const auto& cond : Field<Json>(mv, {"status", "conditions"}, Json::array())) {
    EXPECT_EQ(Field<int64_t>(cond, {"observedGeneration"}), 1) << cond.dump();
    EXPECT_FALSE(Field<std::string>(cond, {"lastTransitionTime"}).empty()) << cond.dump();
  }

  // Update: a spec change is generation 2; the status follows it without a second writer.
  auto patched =
      client_->Patch(kModelVersions, ns_, name, PatchType::kMerge, {{"spec", {{"retain", 5}}}});
  ASSERT_TRUE(patched.has_value()) << patched.error().ToString();
  EXPECT_EQ(GenerationOf(*patched), 2);
  ASSERT_TRUE(Eventually("observedGeneration 2", std::chrono::seconds(30), [&](std::string& seen) {
    seen = MvSummary(name);
    Json o = GetOr(kModelVersions, name);
    return Field<int64_t>(o, {"status", "observedGeneration"}) == 2;
  }));
  EXPECT_EQ(JobsOf(name).size(), 1u);

  // Delete while its writer runs: the writer is cancelled, the finalizer released promptly.
  auto deleted = client_->Delete(kModelVersions, ns_, name);
  ASSERT_TRUE(deleted.has_value()) << deleted.error().ToString();
  ASSERT_TRUE(
      Eventually("the ModelVersion to be gone", std::chrono::seconds(30), [&](std::string& seen) {
        auto o = client_->Get(kModelVersions, ns_, name);
        seen = o ? MvSummary(name) : o.error().ToString();
        return !o && o.error().code() == Code::kNotFound;
      }));
  ASSERT_TRUE(
      Eventually("its writer Job to be deleted", std::chrono::seconds(30), [&](std::string& seen) {
        auto j = client_->Get(kJobs, ns_, job_name);
        seen = j ? "still there, deletionTimestamp=" +
                       Field<std::string>(*j, {"metadata", "deletionTimestamp"})
                 : j.error().ToString();
        return !j && j.error().code() == Code::kNotFound;
      }));
}

// Events: one per distinct (type, reason, message) and object, aggregated by count rather than
// duplicated; the first phase change names "(none)", not an empty phase.
TEST_F(E2eLifecycle, EventsAreAggregatedNotDuplicated) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  InProcessOperator op(client_.get(), ns_);
  ASSERT_TRUE(op.Start());
  const std::string model = "ev-" + RandomSuffix(), name = model + "-v1";
  auto created = client_->Create(kModelVersions, ns_, Mv(name, model, "v1"));
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  ASSERT_TRUE(Eventually("Events TaskStarted and WriterStarted", std::chrono::seconds(30),
                         [&](std::string& seen) {
                           bool task = false, phase = false;
                           for (const auto& e : Events(name)) {
                             std::string reason = Field<std::string>(e, {"reason"});
                             seen += reason + ":" + Field<std::string>(e, {"message"}) + "; ";
                             task |= reason == "TaskStarted";
                             phase |= reason == "WriterStarted";
                           }
                           return task && phase;
                         }));
  std::map<std::string, int> seen;
  for (const auto& e : Events(name)) {
    const std::string key = Field<std::string>(e, {"type"}) + "|" +
                            Field<std::string>(e, {"reason"}) + "|" +
                            Field<std::string>(e, {"message"});
    EXPECT_EQ(++seen[key], 1) << "duplicate Event object: " << e.dump();
    EXPECT_EQ(Field<std::string>(e, {"involvedObject", "uid"}), UidOf(*created));
    EXPECT_EQ(Field<std::string>(e, {"involvedObject", "kind"}), "ModelVersion");
    EXPECT_GE(Field<int64_t>(e, {"count"}, 1), 1);
    if (Field<std::string>(e, {"reason"}) == "WriterStarted") {
      EXPECT_EQ(Field<std::string>(e, {"message"}), "phase (none) -> Writing");
    }
  }
}

// The API rules the reconciler relies on: status only through the status subresource,
// generation moves with spec changes only (not annotations), status fields the operator writes
// survive the CRD's pruning, a stale resourceVersion is a 409, and a watch from a resourceVersion
// delivers the changes after it in order.
TEST_F(E2eLifecycle, StatusSubresourceGenerationAndWatchFollowTheApiRules) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  const std::string name = "rules-" + RandomSuffix();
  auto created = client_->Create(kModelVersions, ns_, Mv(name, name, "v1"));
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  EXPECT_EQ(GenerationOf(*created), 1);
  const std::string created_rv = ResourceVersionOf(*created);

  auto with_status = client_->Patch(kModelVersions, ns_, name, PatchType::kMerge,
                                    {{"status", {{"phase", "Pending"}}}}, true);
  ASSERT_TRUE(with_status.has_value()) << with_status.error().ToString();
  EXPECT_EQ(Field<std::string>(*with_status, {"status", "phase"}), "Pending");
  EXPECT_EQ(GenerationOf(*with_status), 1);

  Json main_put = *with_status;
  main_put["status"]["phase"] = "Failed";  // dropped: the main endpoint ignores status
  auto put = client_->Update(kModelVersions, ns_, main_put);
  ASSERT_TRUE(put.has_value()) << put.error().ToString();
  EXPECT_EQ(Field<std::string>(*put, {"status", "phase"}), "Pending");

  const std::string request = "2026-11-22T07:00:00Z";
  auto annotated =
      client_->Patch(kModelVersions, ns_, name, PatchType::kMerge,
                     {{"metadata", {{"annotations", {{kAnnotationActivateRequest, request}}}}}});
  ASSERT_TRUE(annotated.has_value()) << annotated.error().ToString();
  EXPECT_EQ(GenerationOf(*annotated), 1);
  auto handled = client_->Patch(kModelVersions, ns_, name, PatchType::kMerge,
                                {{"status", {{"lastHandledActivateRequest", request}}}}, true);
  ASSERT_TRUE(handled.has_value()) << handled.error().ToString();
  EXPECT_EQ(Field<std::string>(*handled, {"status", "lastHandledActivateRequest"}), request);

  auto spec_patch =
      client_->Patch(kModelVersions, ns_, name, PatchType::kMerge, {{"spec", {{"retain", 5}}}});
  ASSERT_TRUE(spec_patch.has_value()) << spec_patch.error().ToString();
  EXPECT_EQ(GenerationOf(*spec_patch), 2);

  Json stale = *with_status;  // the resourceVersion from before the spec patch
  stale["status"]["phase"] = "Writing";
  auto conflict = client_->Update(kModelVersions, ns_, stale, true);
  ASSERT_FALSE(conflict.has_value());
  EXPECT_EQ(conflict.error().code(), Code::kAborted) << conflict.error().ToString();

  std::vector<std::pair<EventType, int64_t>> seen;  // event type, generation
  Cancellation cancel;
  WatchOptions opts;
  opts.resource_version = created_rv;
  opts.field_selector = "metadata.name=" + name;
  opts.timeout_seconds = 30;
  auto st = client_->Watch(
      kModelVersions, ns_, opts,
      [&](WatchEvent&& e) {
        if (e.type == EventType::kBookmark) return true;
        seen.emplace_back(e.type, GenerationOf(e.object));
        return GenerationOf(e.object) < 2;  // stop at the spec patch
      },
      &cancel);
  EXPECT_TRUE(st) << st.error().ToString();
  ASSERT_FALSE(seen.empty());
  for (const auto& [type, generation] : seen)
    EXPECT_EQ(type, EventType::kModified);
  EXPECT_EQ(seen.front().second, 1);
  EXPECT_EQ(seen.back().second, 2);
  EXPECT_TRUE(client_->Delete(kModelVersions, ns_, name).has_value());
}

}  // namespace
}  // namespace modelswap::op::e2e
