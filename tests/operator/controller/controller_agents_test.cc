// The controller and the agents: an unreachable agent shows in the active version's status
// (AgentsReachable, Ready), and the operator binary takes the prober's flags.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/subprocess.h"

#include "tests/operator/controller/controller_fixture.h"

namespace modelswap::op {
namespace {

using testing::WaitFor;

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
