// The agent prober's scheduler (AgentProber::Impl): per-pod due times, the in-flight cap, the
// adaptive period during rollouts, and the per-model aggregate. Internal to agent_prober.cc; the
// behaviour is described in agent_prober.h.
//
// Threading: everything but the published aggregate (`loads_`, `reach_`, under mu_) and the
// counters is touched only by the one thread running `ioc_`: the tick timer, probe completions
// and ExpectVersion (posted there) all run on it, so the per-pod state needs no lock.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "operator/controller/agent_prober.h"
#include "operator/controller/probe_client.h"

namespace modelswap::op {

inline int64_t NsOf(std::chrono::milliseconds d) {
  return static_cast<int64_t>(d.count()) * 1'000'000;
}

// The agent's endpoint of a running pod with an IP (container port named "agent", else 8471);
// host "" otherwise.
ProbeTarget AgentEndpoint(const Json& pod);

struct AgentProber::Impl {
  Impl(Store* pods, OnChange on_change, AgentProbeOptions opts);
  ~Impl();

  void Start();
  void Stop();
  ModelLoad LoadFor(const std::string& model_key) const;
  AgentReach ReachFor(const std::string& model_key) const;
  int PerPodStagingFor(const std::string& model_key) const;
  void ExpectVersion(const std::string& model_key, const std::string& version);
  AgentProbeStats Stats() const;

 private:
  // One injected pod.
  struct Pod {
    ObjectPtr obj;    // the cached object this was derived from: same pointer, same pod
    uint64_t id = 0;  // incarnation: a probe started for an earlier one is dropped
    ProbeTarget endpoint;
    std::string ns;
    std::vector<std::string> models;  // names from the annotation
    std::vector<AgentServed> served;  // parallel to models: the latest answer
    int64_t due_ns = 0;
    int failures = 0;       // consecutive unanswered probes
    bool answered = false;  // the latest probe answered
    bool probed = false;    // a probe finished since the endpoint or models last changed
    bool in_flight = false;
    // Its modelswap.io/node-cache annotation says "disabled:" (NodeCacheFallbackReason): the
    // agent stages per pod instead of using the node cache.
    bool per_pod_staging = false;
    std::string error;  // the latest failure
  };
  // A model whose pods should move to a version: the one named by ExpectVersion, else the
  // highest manifest generation a pod reports.
  struct Rollout {
    std::string version;  // "" = whatever has `generation`
    int64_t generation = 0;
    int64_t until_ns = 0;  // fast polling ends here unless a pod moves to the target
  };
  using Due = std::pair<int64_t, std::string>;  // (due time, pod key); stale entries skipped

  int64_t Now() const;
  int64_t Jitter(int64_t span_ns);
  void Tick();
  void Sync(int64_t now);
  void Launch(int64_t now);
  void Probe(const std::string& key, Pod& pod);
  void Done(const std::string& key, uint64_t id, Result<std::string> body);
  void Schedule(const std::string& key, Pod& pod, int64_t due);
  int64_t NextPeriod(const Pod& pod, int64_t now);
  bool OnTarget(const Rollout& r, const AgentServed& s) const;
  bool Behind(const Pod& pod, int64_t now) const;
  // Pods of the model not on its rollout's target are asked within rollout_interval.
  void Hurry(const std::string& model_key, int64_t now);
  // Per-model load and reach from every pod's state (probe_aggregate.cc); starts rollouts seen
  // in the answers, ends finished ones, publishes, and calls on_change for what changed.
  void Aggregate(int64_t now);
  void Log(const std::map<std::string, AgentReach>& reach);

  Store* pods_;
  OnChange on_change_;
  AgentProbeOptions o_;
  boost::asio::io_context ioc_;
  boost::asio::steady_timer tick_;
  std::thread thread_;
  bool running_ = false;  // Start/Stop only (the owner's thread)

  // ioc_ thread only.
  std::unordered_map<std::string, Pod> by_key_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  std::map<std::string, Rollout> rollouts_;  // by model key
  std::map<std::string, AgentReach> logged_reach_;
  std::mt19937_64 rng_{std::random_device{}()};
  int in_flight_ = 0;
  uint64_t next_id_ = 0;
  int64_t start_ns_ = 0, last_sync_ns_ = 0, last_publish_ns_ = 0;
  bool dirty_ = true;  // something an aggregate shows may have changed

  mutable std::mutex mu_;
  std::map<std::string, ModelLoad> loads_;   // guarded by mu_
  std::map<std::string, AgentReach> reach_;  // guarded by mu_
  std::map<std::string, int> staging_;       // guarded by mu_: per-pod staging pods per model
  bool published_ = false;                   // guarded by mu_: no aggregate yet = incomplete

  // Relaxed: statistics read by tests and the benchmark, no ordering with other data.
  std::atomic<uint64_t> probes_{0}, failures_{0};
  std::atomic<int> max_in_flight_{0}, pod_count_{0};
};

}  // namespace modelswap::op
