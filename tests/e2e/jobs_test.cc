// Writer Jobs taken to the end by the real job controller: the test plays the kubelet through
// pods/status (no kubelet runs), the job controller marks the Job Complete or Failed, and the
// operator folds the writer's termination message into status: Active with file, checksum and
// manifest generation, or Failed with the reason; then a rollback by annotation republishes an
// older version through a publish Job.
#include <gtest/gtest.h>

#include "operator/api/well_known.h"
#include "tests/e2e/e2e_fixture.h"

namespace modelswap::op::e2e {
namespace {

class E2eJobs : public E2ETest {
 protected:
  Json Condition(const Json& obj, const std::string& type) {
    for (const auto& c : Field<Json>(obj, {"status", "conditions"}, Json::array())) {
      if (Field<std::string>(c, {"type"}) == type) return c;
    }
    return Json();
  }
  bool JobHasCondition(const std::string& job, const std::string& type, std::string& seen) {
    Json j = GetOr(kJobs, job);
    seen = "Job " + job + " status " + Field<Json>(j, {"status"}, Json::object()).dump();
    return Field<std::string>(Condition(j, type), {"status"}) == "True";
  }
  ::testing::AssertionResult PhaseIs(const std::string& name, const std::string& phase,
                                     std::chrono::seconds limit = std::chrono::seconds(30)) {
    return Eventually(name + " phase " + phase, limit, [&](std::string& seen) {
      seen = MvSummary(name);
      return Phase(name) == phase;
    });
  }
};

TEST_F(E2eJobs, CompletedWriterActivatesTheVersion) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  InProcessOperator op(client_.get(), ns_);
  ASSERT_TRUE(op.Start());
  const std::string model = "job-" + RandomSuffix(), name = model + "-v1";
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(name, model, "v1")).has_value());
  const std::string job = name + "-write";
  ASSERT_FALSE(WaitForJob(job, std::chrono::seconds(30)).is_null());

  E2E_PLAY_KUBELET(job, 0, WriteResult(kRoot, model, "v1", 1));
  ASSERT_TRUE(
      Eventually("the job controller to complete the Job", std::chrono::seconds(30),
                 [&](std::string& seen) { return JobHasCondition(job, "Complete", seen); }));
  ASSERT_TRUE(PhaseIs(name, "Active"));

  Json mv = GetOr(kModelVersions, name);
  EXPECT_EQ(Field<std::string>(mv, {"status", "file"}),
            std::string(kRoot) + "/" + model + "/versions/v1.msf");
  EXPECT_EQ(Field<int64_t>(mv, {"status", "bytes"}), 1048576);
  EXPECT_EQ(Field<std::string>(mv, {"status", "checksum"}).rfind("xxh3:", 0), 0u) << mv.dump();
  EXPECT_EQ(Field<int64_t>(mv, {"status", "manifestGeneration"}), 1);
  EXPECT_EQ(Field<std::string>(mv, {"status", "jobName"}), job);
  EXPECT_EQ(Field<std::string>(Condition(mv, "Written"), {"status"}), "True") << MvSummary(name);
  EXPECT_EQ(Field<std::string>(Condition(mv, "Active"), {"status"}), "True") << MvSummary(name);
  EXPECT_EQ(Field<std::string>(Condition(mv, "Active"), {"reason"}), "Published");
  // A summary Ready condition, where the operator has one: True once the version is active and
  // no pod is left loading (there are no injected pods here).
  if (!Condition(mv, "Ready").is_null()) {
    EXPECT_TRUE(
        Eventually("condition Ready=True", std::chrono::seconds(30), [&](std::string& seen) {
          seen = MvSummary(name);
          return Field<std::string>(Condition(GetOr(kModelVersions, name), "Ready"), {"status"}) ==
                 "True";
        }));
  }
  EXPECT_TRUE(Eventually("Event Activated", std::chrono::seconds(30), [&](std::string& seen) {
    for (const auto& e : Events(name)) {
      seen += Field<std::string>(e, {"reason"}) + " ";
      if (Field<std::string>(e, {"reason"}) == "Activated") return true;
    }
    return false;
  }));
  EXPECT_EQ(JobsOf(name).size(), 1u);
}

TEST_F(E2eJobs, FailedWriterFailsTheVersionWithTheReason) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  InProcessOperator op(client_.get(), ns_);
  ASSERT_TRUE(op.Start());
  const std::string model = "fail-" + RandomSuffix(), name = model + "-v1";
  ASSERT_TRUE(
      client_
          ->Create(kModelVersions, ns_, Mv(name, model, "v1", {{"writer", {{"backoffLimit", 0}}}}))
          .has_value());
  const std::string job = name + "-write";
  ASSERT_FALSE(WaitForJob(job, std::chrono::seconds(30)).is_null());
  const std::string error = R"({"error":"models: no space left on device","code":"IOError"})";
  E2E_PLAY_KUBELET(job, 3, error + "\n");
  ASSERT_TRUE(Eventually("the job controller to fail the Job", std::chrono::seconds(30),
                         [&](std::string& seen) { return JobHasCondition(job, "Failed", seen); }));
  ASSERT_TRUE(PhaseIs(name, "Failed"));
  Json mv = GetOr(kModelVersions, name);
  const std::string message = Field<std::string>(mv, {"status", "message"});
  EXPECT_NE(message.find("BackoffLimitExceeded"), std::string::npos) << message;
  EXPECT_NE(message.find("no space left on device"), std::string::npos) << message;
  EXPECT_EQ(Field<std::string>(Condition(mv, "Written"), {"reason"}), "WriteFailed");
  EXPECT_TRUE(
      Eventually("a Warning Event WriteFailed", std::chrono::seconds(30), [&](std::string& seen) {
        for (const auto& e : Events(name)) {
          seen += Field<std::string>(e, {"type"}) + "/" + Field<std::string>(e, {"reason"}) + " ";
          if (Field<std::string>(e, {"reason"}) == "WriteFailed" &&
              Field<std::string>(e, {"type"}) == "Warning")
            return true;
        }
        return false;
      }));
}

// v1 then v2 are written and published (v2 active); annotating v1 with
// modelswap.io/activate-requested-at runs a publish-only Job for v1, after which v1 is active
// under a higher manifest generation and v2 superseded. The request is recorded as handled.
TEST_F(E2eJobs, RollbackByAnnotationRepublishesTheOlderVersion) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  InProcessOperator op(client_.get(), ns_);
  ASSERT_TRUE(op.Start());
  const std::string model = "rb-" + RandomSuffix();
  const std::string v1 = model + "-v1", v2 = model + "-v2";
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(v1, model, "v1")).has_value());
  ASSERT_FALSE(WaitForJob(v1 + "-write", std::chrono::seconds(30)).is_null());
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(v2, model, "v2")).has_value());
  E2E_PLAY_KUBELET(v1 + "-write", 0, WriteResult(kRoot, model, "v1", 1));
  ASSERT_TRUE(PhaseIs(v1, "Active"));
  // One task per model at a time: v2's writer starts only now.
  ASSERT_FALSE(WaitForJob(v2 + "-write", std::chrono::seconds(30)).is_null());
  E2E_PLAY_KUBELET(v2 + "-write", 0, WriteResult(kRoot, model, "v2", 2));
  ASSERT_TRUE(PhaseIs(v2, "Active"));
  ASSERT_TRUE(PhaseIs(v1, "Superseded"));

  const std::string request = NowRfc3339();
  auto annotated =
      client_->Patch(kModelVersions, ns_, v1, PatchType::kMerge,
                     {{"metadata", {{"annotations", {{kAnnotationActivateRequest, request}}}}}});
  ASSERT_TRUE(annotated.has_value()) << annotated.error().ToString();
  Json publish;
  ASSERT_TRUE(
      Eventually("a publish Job for " + v1, std::chrono::seconds(30), [&](std::string& seen) {
        for (const auto& j : JobsOf(v1)) {
          seen += NameOf(j) + " ";
          if (LabelOf(j, kLabelTask) == "publish") publish = j;
        }
        return !publish.is_null();
      }));
  EXPECT_EQ(AnnotationOf(publish, kAnnotationActivateRequest), request);
  EXPECT_EQ(publish["spec"]["template"]["spec"]["containers"][0]["args"][0], "publish");
  E2E_PLAY_KUBELET(NameOf(publish), 0, PublishResult(kRoot, model, "v1", 3));
  ASSERT_TRUE(PhaseIs(v1, "Active"));
  ASSERT_TRUE(PhaseIs(v2, "Superseded"));
  Json mv1 = GetOr(kModelVersions, v1);
  EXPECT_EQ(Field<int64_t>(mv1, {"status", "manifestGeneration"}), 3);
  EXPECT_EQ(Field<std::string>(mv1, {"status", "lastHandledActivateRequest"}), request);
  // Exactly the write and the publish: the file was not written again.
  EXPECT_EQ(JobsOf(v1).size(), 2u);
}

}  // namespace
}  // namespace modelswap::op::e2e
