// Leader election over a real coordination.k8s.io/v1 Lease: one holder, hand-over on release,
// one winner when two replicas race (the API server's create and resourceVersion checks), and
// two operator processes with --leader-elect where the leader is killed and the standby takes
// over within the lease duration plus a margin, without a second writer Job.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "operator/api/well_known.h"
#include "operator/kube/leaderelection.h"
#include "tests/e2e/e2e_fixture.h"

namespace modelswap::op::e2e {
namespace {

class E2eLeader : public E2ETest {};

TEST_F(E2eLeader, LeaseIsHeldByOneReplicaAndHandedOverOnRelease) {
  const std::string name = "modelswap-e2e-lease-" + RandomSuffix();
  auto a = LeaderElector::Create(client_.get(), DefaultEnv(),
                                 {.ns = ns_, .name = name, .identity = "e2e-a"});
  auto b = LeaderElector::Create(client_.get(), DefaultEnv(),
                                 {.ns = ns_, .name = name, .identity = "e2e-b"});
  ASSERT_TRUE(a.has_value() && b.has_value());
  auto st = (*a)->TryAcquireOrRenew();
  ASSERT_TRUE(st) << st.error().ToString();  // creates the Lease
  EXPECT_TRUE((*a)->IsLeader());
  st = (*b)->TryAcquireOrRenew();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kFailedPrecondition) << st.error().ToString();
  EXPECT_FALSE((*b)->IsLeader());
  st = (*a)->TryAcquireOrRenew();  // a renewal: an update with the Lease's resourceVersion
  ASSERT_TRUE(st) << st.error().ToString();
  (*a)->Release();
  EXPECT_FALSE((*a)->IsLeader());
  st = (*b)->TryAcquireOrRenew();  // free at once, no lease duration to wait out
  ASSERT_TRUE(st) << st.error().ToString();
  EXPECT_TRUE((*b)->IsLeader());
  auto lease = client_->Get(kLeases, ns_, name);
  ASSERT_TRUE(lease.has_value()) << lease.error().ToString();
  EXPECT_EQ(Field<std::string>(*lease, {"spec", "holderIdentity"}), "e2e-b");
  EXPECT_GE(Field<int64_t>(*lease, {"spec", "leaseTransitions"}), 1);
}

TEST_F(E2eLeader, RacingReplicasElectExactlyOneLeader) {
  for (int round = 0; round < 5; ++round) {
    const std::string name = "modelswap-e2e-race-" + RandomSuffix();
    std::vector<std::unique_ptr<LeaderElector>> electors;
    for (const char* id : {"e2e-a", "e2e-b"}) {
      auto e = LeaderElector::Create(client_.get(), DefaultEnv(),
                                     {.ns = ns_, .name = name, .identity = id});
      ASSERT_TRUE(e.has_value());
      electors.push_back(std::move(*e));
    }
    std::thread other([&] { (void)electors[1]->TryAcquireOrRenew(); });
    (void)electors[0]->TryAcquireOrRenew();
    other.join();
    EXPECT_EQ(int(electors[0]->IsLeader()) + int(electors[1]->IsLeader()), 1) << "round " << round;
    auto lease = client_->Get(kLeases, ns_, name);
    ASSERT_TRUE(lease.has_value()) << lease.error().ToString();
    EXPECT_EQ(Field<std::string>(*lease, {"spec", "holderIdentity"}),
              electors[0]->IsLeader() ? "e2e-a" : "e2e-b");
  }
}

TEST_F(E2eLeader, StandbyProcessTakesOverWhenTheLeaderIsKilled) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  const std::string lease = "modelswap-e2e-" + RandomSuffix();
  constexpr int kLeaseSeconds = 4;
  auto start = [&](const std::string& id) {
    return StartOperator(
        id, {"--leader-elect", "--identity", id, "--leader-election-namespace", ns_,
             "--leader-election-id", lease, "--lease-duration", std::to_string(kLeaseSeconds),
             "--renew-deadline", "3", "--retry-period", "0.5"});
  };
  auto holder = [&] {
    auto l = client_->Get(kLeases, ns_, lease);
    return l ? Field<std::string>(*l, {"spec", "holderIdentity"}) : "";
  };
  OperatorProcess* a = start("replica-a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(Eventually("replica-a to hold the Lease", std::chrono::seconds(30),
                         [&](std::string& seen) {
                           seen = "holder \"" + holder() + "\"";
                           return holder() == "replica-a";
                         }))
      << a->Log();
  OperatorProcess* b = start("replica-b");
  ASSERT_NE(b, nullptr);
  const std::string model = "le-" + RandomSuffix();
  const std::string v1 = model + "-v1", other = "other-" + model;
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(v1, model, "v1")).has_value());
  ASSERT_FALSE(WaitForJob(v1 + "-write", std::chrono::seconds(30)).is_null()) << a->Log();
  EXPECT_EQ(holder(), "replica-a");  // b stayed a standby

  a->Kill(SIGKILL);  // no release: b must wait the lease out
  ASSERT_TRUE(Eventually("replica-b to take the Lease", std::chrono::seconds(kLeaseSeconds + 20),
                         [&](std::string& seen) {
                           seen = "holder \"" + holder() + "\"";
                           return holder() == "replica-b";
                         }))
      << b->Log();
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(other, other, "v1")).has_value());
  ASSERT_FALSE(WaitForJob(other + "-write", std::chrono::seconds(30)).is_null()) << b->Log();
  EXPECT_EQ(JobsOf(v1).size(), 1u);  // the new leader adopted a's writer
  auto l = client_->Get(kLeases, ns_, lease);
  ASSERT_TRUE(l.has_value());
  EXPECT_GE(Field<int64_t>(*l, {"spec", "leaseTransitions"}), 1);
  EXPECT_TRUE(b->Running()) << b->Log();

  // SIGTERM: the leader releases the Lease, so a new replica gets it without waiting it out.
  b->Kill(SIGTERM);
  OperatorProcess* c = start("replica-c");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(Eventually("replica-c to take the released Lease",
                         std::chrono::seconds(kLeaseSeconds + 10),
                         [&](std::string& seen) {
                           seen = "holder \"" + holder() + "\"";
                           return holder() == "replica-c";
                         }))
      << c->Log();
}

}  // namespace
}  // namespace modelswap::op::e2e
