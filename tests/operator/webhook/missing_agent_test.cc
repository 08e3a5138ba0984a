// The missing-agent check: which pods count, the Event it writes, and against the fake API
// server: one Warning Event per pod (not per update, not per new leader), only pods carrying the
// opt-in label are watched, and the modelswap_pods_missing_agent gauge.
#include "operator/webhook/missing_agent.h"

#include <gtest/gtest.h>

#include "operator/kube/http_client.h"
#include "operator/kube/resource.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

using testing::WaitFor;

Json Pod(const std::string& name, bool labelled, bool with_agent) {
  Json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", name},
        {"namespace", "apps"},
        {"annotations", {{"modelswap.io/inject", "true"}, {"modelswap.io/models", "ranker"}}}}},
      {"spec", {{"containers", Json::array({{{"name", "app"}, {"image", "app:1"}}})}}}};
  if (labelled) pod["metadata"]["labels"] = {{"modelswap.io/inject", "true"}};
  if (with_agent) {
    pod["spec"]["initContainers"] = Json::array(
        {{{"name", "modelswap-agent"}, {"image", "sidecar:1"}, {"restartPolicy", "Always"}}});
  }
  return pod;
}

TEST(MissingAgentTest, CountsOptedInRunningPodsWithoutTheAgent) {
  Json pod = Pod("a", true, false);
  EXPECT_TRUE(ShouldReportMissingAgent(pod));
  EXPECT_FALSE(ShouldReportMissingAgent(Pod("a", true, true)));
  Json finished = pod;
  finished["status"]["phase"] = "Succeeded";
  EXPECT_FALSE(ShouldReportMissingAgent(finished));
  finished["status"]["phase"] = "Failed";
  EXPECT_FALSE(ShouldReportMissingAgent(finished));
  Json deleting = pod;
  deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_FALSE(ShouldReportMissingAgent(deleting));
  Json opted_out = pod;
  opted_out["metadata"]["annotations"]["modelswap.io/inject"] = "false";
  EXPECT_FALSE(ShouldReportMissingAgent(opted_out));
  Json plain_container = pod;  // the plain-container fallback counts as having the agent
  plain_container["spec"]["containers"].push_back({{"name", "modelswap-agent"}});
  EXPECT_FALSE(ShouldReportMissingAgent(plain_container));
}

TEST(MissingAgentTest, EventIsAWarningOnThePodWithANamePerPodUid) {
  Json pod = Pod("ranker-7d9f", true, false);
  pod["metadata"]["uid"] = "0123abcd-0000-4000-8000-000000000001";
  Json ev = MissingAgentEvent(pod, "op-1", 1'790'000'000'000'000'000);
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["reason"], kReasonAgentMissing);
  EXPECT_EQ(ev["metadata"]["name"], "ranker-7d9f.modelswap-agent-missing.0123abcd");
  EXPECT_EQ(ev["metadata"]["namespace"], "apps");
  EXPECT_EQ(ev["involvedObject"]["kind"], "Pod");
  EXPECT_EQ(ev["involvedObject"]["uid"], "0123abcd-0000-4000-8000-000000000001");
  EXPECT_NE(ev["message"].get<std::string>().find("failurePolicy Ignore"), std::string::npos);
  pod["metadata"]["name"] = std::string(253, 'p');
  EXPECT_LE(MissingAgentEvent(pod, "op-1", 0)["metadata"]["name"].get<std::string>().size(), 253u);
}

class MissingAgentCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterConfig cfg;
    cfg.server = server_.url();
    client_ = std::move(*HttpKubeClient::Create(DefaultEnv(), cfg));
  }
  std::unique_ptr<MissingAgentCheck> NewCheck(const std::string& instance) {
    return std::make_unique<MissingAgentCheck>(
        client_.get(), DefaultEnv(),
        MissingAgentOptions{.instance = instance,
                            .backoff_initial = std::chrono::milliseconds(50)});
  }
  // Events per involved pod name.
  std::map<std::string, int> EventsByPod() {
    std::map<std::string, int> out;
    for (const Json& ev : server_.List(kEvents, "apps")) {
      EXPECT_EQ(ev["reason"], kReasonAgentMissing);
      ++out[ev["involvedObject"]["name"].get<std::string>()];
    }
    return out;
  }
  bool HasEventFor(const std::string& pod) { return EventsByPod().count(pod) != 0; }

  fake::FakeApiServer server_;
  std::unique_ptr<HttpKubeClient> client_;
};

TEST_F(MissingAgentCluster, OneWarningPerPodAcrossUpdatesAndLeaders) {
  server_.Create(kPods, "apps", Pod("missing", true, false));
  server_.Create(kPods, "apps", Pod("injected", true, true));
  // Annotated but without the opt-in label: the webhook never sees it and neither does the
  // check (it selects by label, never all pods).
  server_.Create(kPods, "apps", Pod("unlabelled", false, false));
  auto check = NewCheck("op-1");
  OperatorMetrics metrics;
  check->RegisterMetrics(&metrics);
  check->Start();
  ASSERT_TRUE(WaitFor([&] { return check->HasSynced(); }));
  // A pod added after the list arrives through the watch, after every listed pod was handled.
  server_.Create(kPods, "apps", Pod("sentinel-1", true, false));
  ASSERT_TRUE(WaitFor([&] { return HasEventFor("sentinel-1"); }));
  EXPECT_EQ(EventsByPod(), (std::map<std::string, int>{{"missing", 1}, {"sentinel-1", 1}}));
  EXPECT_EQ(check->Missing(), 2u);
  EXPECT_NE(metrics.Render().find("modelswap_pods_missing_agent 2"), std::string::npos);

  // An update of a reported pod (status changes, relabels) reports nothing new.
  ASSERT_TRUE(
      server_.PatchSpec(kPods, "apps", "missing", {{"metadata", {{"labels", {{"x", "1"}}}}}}));
  server_.Create(kPods, "apps", Pod("sentinel-2", true, false));
  ASSERT_TRUE(WaitFor([&] { return HasEventFor("sentinel-2"); }));
  EXPECT_EQ(EventsByPod()["missing"], 1);
  EXPECT_EQ(check->events_recorded(), 3u);

  // A new leader re-checks every pod: the per-pod Event name makes its creates 409s.
  int posts = server_.CountRequests("POST", "events");
  auto next_leader = NewCheck("op-2");
  next_leader->Start();
  ASSERT_TRUE(WaitFor([&] { return server_.CountRequests("POST", "events") == posts + 3; }));
  EXPECT_EQ(EventsByPod(),
            (std::map<std::string, int>{{"missing", 1}, {"sentinel-1", 1}, {"sentinel-2", 1}}));
  EXPECT_EQ(next_leader->events_recorded(), 0u);
  next_leader->Stop();

  // Deleted pods leave the gauge.
  ASSERT_EQ(server_.Delete(kPods, "apps", "sentinel-1"), 200);
  ASSERT_EQ(server_.Delete(kPods, "apps", "sentinel-2"), 200);
  ASSERT_TRUE(WaitFor([&] { return check->Missing() == 1; }));
  EXPECT_NE(metrics.Render().find("modelswap_pods_missing_agent 1"), std::string::npos);
  check->Stop();
}

}  // namespace
}  // namespace modelswap::op
