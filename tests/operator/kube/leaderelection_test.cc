// Leader election: duration checks, and hand-over between real operator processes sharing one
// (fake) API server.
#include "operator/kube/leaderelection.h"
#include "operator/api/well_known.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "common/subprocess.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

using testing::WaitFor;

TEST(LeaderElectionConfigTest, BadDurationsAreRejectedAtConstruction) {
  LeaderElectionConfig c{.ns = "default", .identity = "a"};
  EXPECT_TRUE(ValidateLeaderElectionConfig(c).has_value());
  c.renew_deadline = c.lease_duration;
  EXPECT_FALSE(ValidateLeaderElectionConfig(c).has_value());
  c = LeaderElectionConfig{.ns = "default", .identity = "a"};
  c.retry_period = std::chrono::milliseconds(9000);  // 1.2 x 9 s > 10 s renew deadline
  EXPECT_FALSE(ValidateLeaderElectionConfig(c).has_value());
  c = LeaderElectionConfig{.ns = "default"};
  EXPECT_FALSE(ValidateLeaderElectionConfig(c).has_value());
  EXPECT_FALSE(LeaderElector::Create(nullptr, DefaultEnv(), c).has_value());
}

class OperatorProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    kubeconfig_ = dir_.Write("kubeconfig",
                             "apiVersion: v1\ncurrent-context: t\n"
                             "contexts: [{name: t, context: {cluster: f, user: u}}]\n"
                             "clusters: [{name: f, cluster: {server: \"" +
                                 server_.url() +
                                 "\"}}]\n"
                                 "users: [{name: u, user: {token: test}}]\n");
  }
  void TearDown() override {
    for (pid_t p : pids_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
  }
  pid_t Start(const std::string& id) {
    std::vector<std::string> argv = {MODELSWAP_OPERATOR_BIN,
                                     "--kubeconfig",
                                     kubeconfig_,
                                     "--namespace",
                                     "default",
                                     "--leader-elect",
                                     "--identity",
                                     id,
                                     "--leader-election-namespace",
                                     "default",
                                     "--lease-duration",
                                     "2",
                                     "--renew-deadline",
                                     "1.5",
                                     "--retry-period",
                                     "0.2",
                                     "--metrics-addr",
                                     "127.0.0.1:0",
                                     "--sidecar-image",
                                     "example/sidecar:1",
                                     "--log-level",
                                     "info"};
    auto pid = SpawnProcess(argv, dir_.path + "/" + id + ".out", dir_.path + "/" + id + ".err");
    EXPECT_TRUE(pid.has_value());
    pids_.push_back(*pid);
    return *pid;
  }
  std::string Holder() {
    auto lease = server_.Get(kLeases, "default", "modelswap-operator");
    return lease ? Field<std::string>(*lease, {"spec", "holderIdentity"}) : "";
  }
  std::string RenewTime() {
    auto lease = server_.Get(kLeases, "default", "modelswap-operator");
    return lease ? Field<std::string>(*lease, {"spec", "renewTime"}) : "";
  }
  bool Exited(pid_t pid, int* status) { return ::waitpid(pid, status, WNOHANG) == pid; }
  Json Mv(const std::string& v) {
    return {{"apiVersion", "modelswap.io/v1alpha1"},
            {"kind", "ModelVersion"},
            {"metadata", {{"name", "ranker-" + v}}},
            {"spec",
             {{"model", "ranker"},
              {"version", v},
              {"storage", {{"claimName", "models"}}},
              {"source", {{"generate", {{"bytes", 10}}}}}}}};
  }

  fake::FakeApiServer server_;
  testing::TempDir dir_;
  std::string kubeconfig_;
  std::vector<pid_t> pids_;
};

TEST_F(OperatorProcesses, GracefulHandOverAndTakeOverAfterACrash) {
  pid_t a = Start("a");
  ASSERT_TRUE(WaitFor([&] { return Holder() == "a"; }));
  pid_t b = Start("b");
  // a keeps renewing; b waits as a standby.
  std::string renewed = RenewTime();
  ASSERT_TRUE(WaitFor([&] { return RenewTime() != renewed; }));
  renewed = RenewTime();
  ASSERT_TRUE(WaitFor([&] { return RenewTime() != renewed; }));
  EXPECT_EQ(Holder(), "a");
  server_.Create(kModelVersions, "default", Mv("v1"));
  ASSERT_TRUE(
      WaitFor([&] { return server_.Get(kJobs, "default", "ranker-v1-write").has_value(); }));

  // SIGTERM: a releases the lease and b takes over without waiting for expiry.
  ::kill(a, SIGTERM);
  int status = 0;
  ASSERT_TRUE(WaitFor([&] { return Exited(a, &status); }));
  pids_.erase(std::find(pids_.begin(), pids_.end(), a));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(WaitFor([&] { return Holder() == "b"; }));
  server_.Create(kModelVersions, "default", Mv("v2"));
  server_.CompleteJob("default", "ranker-v1-write",
                      R"({"manifest_generation":1,"checksum":"xxh3:1"})");
  ASSERT_TRUE(
      WaitFor([&] { return server_.Get(kJobs, "default", "ranker-v2-write").has_value(); }));

  // b crashes: a new replica c takes the lease once it expires.
  ::kill(b, SIGKILL);
  ::waitpid(b, nullptr, 0);
  pids_.erase(std::find(pids_.begin(), pids_.end(), b));
  Start("c");
  ASSERT_TRUE(WaitFor([&] { return Holder() == "c"; }));
  EXPECT_EQ(server_.List(kJobs, "default").size(), 2u);  // no duplicate writer across leaders
}

TEST_F(OperatorProcesses, LeaderThatLosesTheLeaseExits) {
  pid_t a = Start("a");
  ASSERT_TRUE(WaitFor([&] { return Holder() == "a"; }));
  // Another party takes the lease over behind a's back.
  server_.PatchSpec(kLeases, "default", "modelswap-operator",
                    {{"spec", {{"holderIdentity", "intruder"}, {"leaseDurationSeconds", 3600}}}});
  int status = 0;
  ASSERT_TRUE(WaitFor([&] { return Exited(a, &status); }));
  pids_.erase(std::find(pids_.begin(), pids_.end(), a));
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
}

}  // namespace
}  // namespace modelswap::op
