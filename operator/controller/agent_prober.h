// AgentProber: which version each injected pod has loaded, from the agents' GET /v1/status.
//
// The operator never looks at file locks on the shared volume (blobfuse has none); it asks the
// agents. The injected-pod cache (pods labelled modelswap.io/injected=true, annotated
// modelswap.io/models: "a,b") is read every `sync_every`; each running pod's agent (container
// port named "agent", else 8471) is asked on its own schedule, and per model key "ns/model" the
// prober aggregates: total pods, pods per active version, whether every pod's latest probe
// answered (retention deletes files only then), and which agents cannot be reached. Models
// whose aggregate changed are reported through on_change (at most every `publish_every`), so
// status follows the agents without the reconciler polling. The API server is not called.
//
// Made to scale to thousands of pods (bench/README.md, "Rollout status"):
//  - one thread: an io_context runs every probe (probe_client.h) and the scheduler; no thread
//    per pod or per probe; at most `max_in_flight` probes at once, the most overdue first;
//  - each pod has its own due time: first a random moment within `rollout_interval` of being
//    seen, then every `interval` with +-10 % jitter, so pods are not asked in one burst;
//  - adaptive period: a model is rolling out when ExpectVersion names the version it should
//    serve (the controller calls it when a version turns Active, i.e. after a publish) or when
//    its pods report different manifest generations (a swap seen before any hint). Its pods not
//    yet on the target are asked every `rollout_interval` until they are, or until
//    `rollout_window` passes without any of them moving (an agent that refuses the version must
//    not be polled fast forever);
//  - an agent that does not answer is retried with backoff (interval, doubling, at most
//    `failure_backoff_max`) so a default-deny NetworkPolicy costs timeouts at a bounded rate;
//  - per pod the prober keeps its endpoint, model names, served version and generation and the
//    last error, never a response body.
// Unreachable agents are counted per model (ReachFor: how many, and one pod with its error),
// logged once when it starts and when it ends, and make the load incomplete.
//
// Thread safety: LoadFor, ReachFor, ExpectVersion and stats from any thread; Start/Stop from
// the owner. on_change runs on the prober's thread and must not block.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "operator/controller/reconciler.h"
#include "operator/kube/store.h"

namespace modelswap::op {

// What an agent reports for one model: its active version ("" when it has none yet) and that
// version's manifest generation (a rollback republishes an old version under a higher one).
struct AgentServed {
  std::string version;
  int64_t generation = 0;
  bool operator==(const AgentServed&) const = default;
};

// model -> what the agent serves, from a /v1/status body (sidecar/agent/status_json.cc).
Result<std::map<std::string, AgentServed>> ParseAgentStatus(const std::string& body);
// GETs <base_url>/v1/status once, blocking (standalone mode's single agent): model -> version.
Result<std::map<std::string, std::string>> FetchAgentStatus(const std::string& base_url,
                                                            std::chrono::milliseconds timeout);
// http://<podIP>:<agent port>, or "" when the pod is not running or has no IP.
std::string AgentUrl(const Json& pod);

struct AgentProbeOptions {
  std::chrono::milliseconds interval{10'000};         // steady state, per pod
  std::chrono::milliseconds rollout_interval{1'000};  // pods behind a rollout
  std::chrono::milliseconds rollout_window{120'000};  // fast polling without progress ends
  std::chrono::milliseconds timeout{2'000};           // one probe: connect to last byte
  std::chrono::milliseconds failure_backoff_max{60'000};
  std::chrono::milliseconds sync_every{1'000};     // re-read the pod cache
  std::chrono::milliseconds publish_every{1'000};  // aggregate and call on_change
  int max_in_flight = 64;
  size_t max_body_bytes = 1 << 20;
};

// Agents of a model's pods that could not be asked.
struct AgentReach {
  int unreachable = 0;  // running pods whose agent's latest probe failed
  int not_running = 0;  // pods not Running or without an IP yet
  std::string example;  // "ns/pod: error" of one of them ("" when none)
  bool operator==(const AgentReach&) const = default;
};

struct AgentProbeStats {
  uint64_t probes = 0;    // finished, answered or not
  uint64_t failures = 0;  // of those, not answered
  int max_in_flight = 0;  // the most probes in flight at once since Start
  int pods = 0;           // pods being probed (as of the last cache sync)
};

class AgentProber {
 public:
  using OnChange = std::function<void(const std::string& model_key)>;
  AgentProber(Store* injected_pods, OnChange on_change, std::chrono::milliseconds interval);
  AgentProber(Store* injected_pods, OnChange on_change, AgentProbeOptions opts);
  ~AgentProber();
  AgentProber(const AgentProber&) = delete;
  AgentProber& operator=(const AgentProber&) = delete;

  void Start();
  void Stop();
  // Before the first aggregate: incomplete. A model no injected pod serves: complete, 0 pods.
  ModelLoad LoadFor(const std::string& model_key) const;
  AgentReach ReachFor(const std::string& model_key) const;
  // The model's pods whose node-cache annotation says "disabled:" (they stage per pod instead
  // of using the node cache; operator/webhook/node_cache_plan.h). A change calls on_change.
  int PerPodStagingFor(const std::string& model_key) const;
  // `version` of model_key ("ns/model") was just published: its pods not serving it are asked
  // within rollout_interval, and then every rollout_interval until they serve it.
  void ExpectVersion(const std::string& model_key, const std::string& version);
  AgentProbeStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelswap::op
