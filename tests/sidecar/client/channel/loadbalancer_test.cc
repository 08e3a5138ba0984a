// The load-balancer example end to end: the C++ data plane (lb_data_plane) and the Python agent
// (examples/loadbalancer/agent.py) run as two processes over two channels, with a 20 ms period
// instead of 200 ms. Bounded: the agent stops after answering the last observation or after its
// timeout, the data plane after that answer or a fixed number of extra periods.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tests/sidecar/client/channel/channel_fixture.h"
#include "tests/sidecar/client/channel/subprocess.h"

namespace modelswap::channel_test {
namespace {

class LoadBalancerExample : public ChannelTest {};

TEST_F(LoadBalancerExample, AgentAnswersObservationsAndDataPlaneAppliesOnlyNewerActions) {
  constexpr int kObservations = 30;
  ::setenv("PYTHONPATH", LB_PYTHONPATH, 1);
  Child plane = Child::Spawn({LB_DATA_PLANE, "--shm", dir_, "--period-ms", "20", "--count",
                              std::to_string(kObservations), "--final-wait-periods", "500"});
  Child agent = Child::Spawn({LB_PYTHON, LB_AGENT, "--shm", dir_, "--until-seq",
                              std::to_string(kObservations), "--timeout-s", "60"});
  const std::string agent_out = agent.ReadLine();
  EXPECT_TRUE(ExitedOk(agent.Wait())) << agent_out;
  const std::string plane_out = plane.ReadLine();
  EXPECT_TRUE(ExitedOk(plane.Wait())) << plane_out;

  const auto a = nlohmann::json::parse(agent_out);
  const auto p = nlohmann::json::parse(plane_out);
  EXPECT_EQ(a["last_obs_seq"], kObservations);
  EXPECT_GE(a["answered"].get<int>(), 1);
  EXPECT_EQ(p["observations"], kObservations);
  EXPECT_TRUE(p["final_answered"].get<bool>());  // the action for the last observation applied
  EXPECT_EQ(p["invalid"], 0);                    // every alias table reproduced its weights
  EXPECT_GE(p["actions_applied"].get<int>(), 1);
  EXPECT_LE(p["actions_applied"].get<int>(), a["answered"].get<int>());
}

}  // namespace
}  // namespace modelswap::channel_test
