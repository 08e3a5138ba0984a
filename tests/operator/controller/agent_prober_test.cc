// The agent prober against real sockets: simulated agents on loopback (agent_prober_fake_agents.h)
// behind pods in a Store, as the injected-pod informer fills it. Checks the in-flight cap as the
// agents count it, that a hung agent costs only its timeout, that unreachable and not-running
// agents are reported, and that a published version is seen at the rollout period, not the
// steady one. Waits are bounded loops with generous limits; nothing asserts on speed.
#include <gtest/gtest.h>

#include <thread>

#include "operator/api/well_known.h"
#include "operator/controller/agent_prober.h"
#include "operator/controller/probe_client.h"
#include "tests/operator/controller/agent_prober_fake_agents.h"

namespace modelswap::op {
namespace {

using testing::FakeAgents;
using namespace std::chrono_literals;

Json Pod(const std::string& name, int port, const std::string& phase = "Running") {
  Json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", name},
        {"namespace", "ns"},
        {"resourceVersion", "1"},
        {"labels", {{kLabelInjected, "true"}}},
        {"annotations", {{kAnnotationModels, "ranker"}}}}},
      {"spec",
       {{"containers",
         Json::array({{{"name", "agent"},
                       {"ports", Json::array({{{"name", "agent"}, {"containerPort", port}}})}}})}}},
      {"status", {{"phase", phase}}}};
  if (phase == "Running") pod["status"]["podIP"] = "127.0.0.1";
  return pod;
}

void Fill(Store& store, const FakeAgents& agents) {
  std::vector<Json> pods;
  for (int i = 0; i < agents.size(); ++i)
    pods.push_back(Pod("p" + std::to_string(i), agents.port(i)));
  (void)store.Replace(std::move(pods), "1");
}

// Polls `cond` every 20 ms for at most `limit`.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit = 20s) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(20ms)) {
    if (cond()) return true;
  }
  return cond();
}

bool AllOn(const AgentProber& p, const std::string& version, int n) {
  ModelLoad l = p.LoadFor("ns/ranker");
  auto it = l.loaded.find(version);
  return l.complete && l.total == n && it != l.loaded.end() && it->second == n;
}

AgentProbeOptions Fast() {
  return AgentProbeOptions{.interval = 500ms,
                           .rollout_interval = 100ms,
                           .timeout = 2s,
                           .sync_every = 50ms,
                           .publish_every = 50ms};
}

TEST(AgentProberTest, ParsesTheAgentsStatusBody) {
  auto s = ParseAgentStatus(FakeAgents::Body("ranker", {"v7", 12}));
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ((*s)["ranker"], (AgentServed{"v7", 12}));
  auto none = ParseAgentStatus(R"({"models":{"ranker":{"state":"loading","active":null}}})");
  ASSERT_TRUE(none);
  EXPECT_EQ((*none)["ranker"], AgentServed{});
  EXPECT_FALSE(ParseAgentStatus("{\"ready\":true}"));
  EXPECT_FALSE(ParseAgentStatus("not json"));
}

TEST(AgentProberTest, AgentUrlsAndBaseUrls) {
  EXPECT_EQ(AgentUrl(Pod("a", 9000)), "http://127.0.0.1:9000");
  EXPECT_EQ(AgentUrl(Pod("a", 9000, "Pending")), "");
  Json v6 = Pod("b", 9001);
  v6["status"]["podIP"] = "fd00::5";
  EXPECT_EQ(AgentUrl(v6), "http://[fd00::5]:9001");
  auto t = ParseAgentBaseUrl("http://[fd00::5]:9001");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "fd00::5");
  EXPECT_EQ(t->port, 9001);
  EXPECT_FALSE(ParseAgentBaseUrl("https://x:1"));
  EXPECT_FALSE(ParseAgentBaseUrl("http://x:99999"));
}

TEST(AgentProberTest, FetchAgentStatusAsksOneAgent) {
  FakeAgents agents(1, "ranker", {"v1", 1});
  auto s = FetchAgentStatus("http://127.0.0.1:" + std::to_string(agents.port(0)), 2s);
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ((*s)["ranker"], "v1");
}

TEST(AgentProberTest, InFlightCapIsNeverExceeded) {
  constexpr int kPods = 40, kCap = 4;
  FakeAgents agents(kPods, "ranker", {"v1", 1}, /*threads=*/2);
  for (int i = 0; i < kPods; ++i)
    agents.SetDelay(i, 30ms);  // answers overlap: the cap, not luck, keeps them apart
  Store store;
  Fill(store, agents);
  AgentProbeOptions o = Fast();
  o.max_in_flight = kCap;
  AgentProber prober(
      &store, [](const std::string&) {}, o);
  prober.Start();
  ASSERT_TRUE(WaitFor([&] { return AllOn(prober, "v1", kPods); }));
  // Keep probing a while (several rounds) so that any excess would show.
  ASSERT_TRUE(WaitFor([&] { return prober.stats().probes >= 3 * kPods; }));
  prober.Stop();
  EXPECT_LE(agents.max_in_service(), kCap);
  EXPECT_LE(prober.stats().max_in_flight, kCap);
  EXPECT_GE(agents.max_in_service(), 1);
}

TEST(AgentProberTest, HungAgentCostsOnlyItsTimeoutAndIsReported) {
  constexpr int kPods = 6;
  FakeAgents agents(kPods, "ranker", {"v1", 1});
  agents.SetHung(0, true);
  Store store;
  Fill(store, agents);
  AgentProbeOptions o = Fast();
  o.timeout = 300ms;
  o.max_in_flight = 2;  // a hung agent holds one of two slots for its timeout, never both
  AgentProber prober(
      &store, [](const std::string&) {}, o);
  prober.Start();
  ASSERT_TRUE(WaitFor([&] {
    ModelLoad l = prober.LoadFor("ns/ranker");
    return l.total == kPods && l.loaded["v1"] == kPods - 1 &&
           prober.ReachFor("ns/ranker").unreachable == 1;
  }));
  ModelLoad l = prober.LoadFor("ns/ranker");
  EXPECT_FALSE(l.complete);  // retention must wait: the hung pod may still hold a version
  AgentReach r = prober.ReachFor("ns/ranker");
  EXPECT_NE(r.example.find("ns/p0"), std::string::npos) << r.example;
  EXPECT_NE(r.example.find("timed out"), std::string::npos) << r.example;
  // The others keep being asked meanwhile: each answered several times.
  ASSERT_TRUE(WaitFor([&] {
    for (int i = 1; i < kPods; ++i) {
      if (agents.requests_to(i) < 3) return false;
    }
    return true;
  }));
  prober.Stop();
}

TEST(AgentProberTest, UnreachableAndNotRunningAgentsAreCounted) {
  FakeAgents agents(2, "ranker", {"v1", 1});
  // Two ports nobody listens on: bind, read the port, close.
  std::vector<int> dead;
  for (int i = 0; i < 2; ++i) {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    dead.push_back(a.local_endpoint().port());
  }
  Store store;
  (void)store.Replace({Pod("up0", agents.port(0)), Pod("up1", agents.port(1)),
                       Pod("down0", dead[0]), Pod("down1", dead[1]), Pod("pending", 1, "Pending")},
                      "1");
  AgentProber prober(
      &store, [](const std::string&) {}, Fast());
  prober.Start();
  ASSERT_TRUE(WaitFor([&] { return prober.ReachFor("ns/ranker").unreachable == 2; }));
  AgentReach r = prober.ReachFor("ns/ranker");
  EXPECT_EQ(r.not_running, 1);
  EXPECT_NE(r.example.find("ns/down"), std::string::npos) << r.example;
  ModelLoad l = prober.LoadFor("ns/ranker");
  EXPECT_FALSE(l.complete);
  EXPECT_EQ(l.total, 5);
  EXPECT_EQ(l.loaded["v1"], 2);
  // Reachable again: the pods now point at live agents and the pending one is gone.
  (void)store.Replace({Pod("up0", agents.port(0)), Pod("up1", agents.port(1))}, "2");
  ASSERT_TRUE(WaitFor([&] { return AllOn(prober, "v1", 2); }));
  EXPECT_EQ(prober.ReachFor("ns/ranker"), AgentReach{});
  prober.Stop();
}

TEST(AgentProberTest, PublishedVersionIsSeenAtTheRolloutPeriod) {
  constexpr int kPods = 10;
  FakeAgents agents(kPods, "ranker", {"v1", 1});
  Store store;
  Fill(store, agents);
  AgentProbeOptions o = Fast();
  o.interval = 10min;  // the steady period alone would never see the swap within the test
  o.rollout_interval = 100ms;
  std::atomic<int> changes{0};  // relaxed: a count read after the fact
  AgentProber prober(
      &store, [&](const std::string&) { changes.fetch_add(1, std::memory_order_relaxed); }, o);
  prober.Start();
  ASSERT_TRUE(WaitFor([&] { return AllOn(prober, "v1", kPods); }));
  int before = changes.load(std::memory_order_relaxed);
  prober.ExpectVersion("ns/ranker", "v2");  // the publish, before the agents swap
  for (int i = 0; i < kPods; ++i) {
    agents.SetServed(i, {"v2", 2});
    std::this_thread::sleep_for(20ms);  // pods swap one after another
  }
  ASSERT_TRUE(WaitFor([&] { return AllOn(prober, "v2", kPods); }))
      << prober.LoadFor("ns/ranker").loaded["v2"];
  EXPECT_GT(changes.load(std::memory_order_relaxed), before);
  prober.Stop();
}

TEST(AgentProberTest, SwapSeenWithoutHintSpeedsUpTheRest) {
  constexpr int kPods = 8;
  FakeAgents agents(kPods, "ranker", {"v1", 1});
  Store store;
  Fill(store, agents);
  AgentProbeOptions o = Fast();
  o.interval = 10min;
  AgentProber prober(
      &store, [](const std::string&) {}, o);
  prober.Start();
  ASSERT_TRUE(WaitFor([&] { return AllOn(prober, "v1", kPods); }));
  // Every agent swaps; none is due for ten minutes. A new pod (already on v2) is probed at
  // once; its newer generation starts a rollout that asks the others at the rollout period.
  for (int i = 0; i < kPods; ++i)
    agents.SetServed(i, {"v2", 2});
  FakeAgents late(1, "ranker", {"v2", 2});
  std::vector<Json> pods;
  for (int i = 0; i < kPods; ++i)
    pods.push_back(Pod("p" + std::to_string(i), agents.port(i)));
  pods.push_back(Pod("new", late.port(0)));
  (void)store.Replace(std::move(pods), "2");
  ASSERT_TRUE(WaitFor([&] { return AllOn(prober, "v2", kPods + 1); }));
  prober.Stop();
}

}  // namespace
}  // namespace modelswap::op
