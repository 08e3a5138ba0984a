// Restarts under a real operator process: the operator killed with SIGKILL and started again
// (no second writer Job, changes made while it was down are acted on, status converges), and
// kube-apiserver restarted under a running operator (its watches cut and every old
// resourceVersion too old: no duplicate Job, a ModelVersion created after the restart gets its
// Job within seconds).
#include <gtest/gtest.h>
#include <signal.h>

#include "operator/api/well_known.h"
#include "tests/e2e/e2e_fixture.h"

namespace modelswap::op::e2e {
namespace {

class E2eRestart : public E2ETest {
 protected:
  ::testing::AssertionResult OneJob(const std::string& mv, std::chrono::seconds limit) {
    return Eventually("exactly one Job of " + mv, limit, [&](std::string& seen) {
      auto jobs = JobsOf(mv);
      for (const auto& j : jobs)
        seen += NameOf(j) + " ";
      return jobs.size() == 1;
    });
  }
};

TEST_F(E2eRestart, OperatorKilledAndStartedAgainMakesNoDuplicateJob) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  OperatorProcess* op = StartOperator("operator");
  ASSERT_NE(op, nullptr);
  const std::string model = "rs-" + RandomSuffix();
  const std::string a = model + "-a", b = "other-" + model;
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(a, model, "a")).has_value());
  ASSERT_TRUE(OneJob(a, std::chrono::seconds(60))) << op->Log();
  ASSERT_TRUE(Eventually("status Writing", std::chrono::seconds(30), [&](std::string& seen) {
    seen = MvSummary(a);
    return Phase(a) == "Writing";
  })) << op->Log();

  op->Kill(SIGKILL);
  // While it is down: a new ModelVersion of another model.
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(b, "other-" + model, "v1")).has_value());
  ASSERT_TRUE(op->Start(OperatorArgs()));
  ASSERT_TRUE(OneJob(b, std::chrono::seconds(60))) << op->Log();
  // The restarted operator found a's running writer: still one Job, same name, same status.
  EXPECT_EQ(JobsOf(a).size(), 1u);
  EXPECT_EQ(NameOf(JobsOf(a).at(0)), a + "-write");
  EXPECT_EQ(Phase(a), "Writing") << MvSummary(a);
  EXPECT_TRUE(op->Running()) << op->Log();

  // And it takes the write to the end.
  E2E_PLAY_KUBELET(a + "-write", 0, WriteResult(kRoot, model, "a", 1));
  EXPECT_TRUE(Eventually("a Active", std::chrono::seconds(30), [&](std::string& seen) {
    seen = MvSummary(a);
    return Phase(a) == "Active";
  })) << op->Log();
  EXPECT_EQ(JobsOf(a).size(), 1u);
}

TEST_F(E2eRestart, ApiServerRestartedUnderARunningOperator) {
  if (!CanRestartApiServer()) {
    GTEST_SKIP() << "no way to restart the API server here (MODELSWAP_E2E_CONTROL_PLANE unset: "
                    "a real cluster's control plane is not the test's to restart)";
  }
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  OperatorProcess* op = StartOperator("operator");
  ASSERT_NE(op, nullptr);
  const std::string model = "as-" + RandomSuffix();
  const std::string a = model + "-a", b = "after-" + model;
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(a, model, "a")).has_value());
  ASSERT_TRUE(OneJob(a, std::chrono::seconds(60))) << op->Log();
  ASSERT_TRUE(Eventually("status Writing", std::chrono::seconds(30), [&](std::string& seen) {
    seen = MvSummary(a);
    return Phase(a) == "Writing";
  })) << op->Log();

  Status restarted = RestartApiServer();
  ASSERT_TRUE(restarted) << restarted.error().ToString();
  // The client may need a moment after /readyz (v1.32/reconnect-while-apiserver-starting.http):
  // wait for a write to go through before timing the operator.
  ASSERT_TRUE(
      Eventually("the API server to take writes", std::chrono::seconds(30), [&](std::string& seen) {
        auto r = client_->Create(kModelVersions, ns_, Mv(b, "after-" + model, "v1"));
        if (!r && r.error().code() == Code::kAlreadyExists) return true;
        if (!r) seen = r.error().ToString();
        return r.has_value();
      }));
  // Converges within seconds: watches reconnect and relist the current state, not a snapshot at
  // the expired resourceVersion (which the next watch would refuse again).
  EXPECT_TRUE(OneJob(b, std::chrono::seconds(15))) << op->Log();
  EXPECT_TRUE(Eventually("status of " + b, std::chrono::seconds(15), [&](std::string& seen) {
    seen = MvSummary(b);
    return Phase(b) == "Writing";
  })) << op->Log();
  EXPECT_EQ(JobsOf(a).size(), 1u);
  EXPECT_TRUE(op->Running()) << op->Log();

  E2E_PLAY_KUBELET(a + "-write", 0, WriteResult(kRoot, model, "a", 1));
  EXPECT_TRUE(Eventually("a Active after the restart", std::chrono::seconds(30),
                         [&](std::string& seen) {
                           seen = MvSummary(a);
                           return Phase(a) == "Active";
                         }))
      << op->Log();
}

}  // namespace
}  // namespace modelswap::op::e2e
