// MissingAgentCheck: finds pods that asked for the modelswap agent but run without it, and says
// so: one Warning Event per pod and the gauge modelswap_pods_missing_agent.
//
// How a pod gets there: the webhook's MutatingWebhookConfiguration has failurePolicy Ignore and
// the webhook was unreachable when the pod was created, so the API server admitted it unmutated.
// Such a pod never reads models through modelswap and nothing else would tell its owner.
//
// What is watched: only pods carrying the opt-in label modelswap.io/inject=true (the label the
// chart's webhook objectSelector routes on; well_known.h kLabelInjectOptIn), by label selector,
// never all pods of the cluster. The operator's other pod informer selects on
// modelswap.io/injected=true, which such pods never got. A pod counts when admission.h's
// PodMissingAgent says so and it is neither finished (Succeeded/Failed) nor being deleted.
//
// Once per pod: the Event's name is derived from the pod's name and uid, so a resync, a relist,
// or a new leader after a fail-over that re-checks the same pod gets 409 AlreadyExists instead
// of a second Event; an in-memory set of reported uids saves even that request. A failed Event
// create is retried on the pod's next change.
//
// Runs on the leader only (like the reconciler), so the gauge is exported by the leader.
//
// Thread safety: Start/Stop from the owner; everything else from any thread. The handler runs
// on the reflector's thread and makes at most one API call per newly seen pod.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/env.h"
#include "operator/api/well_known.h"
#include "operator/kube/client.h"
#include "operator/kube/reflector.h"
#include "operator/kube/store.h"
#include "operator/metrics/metrics.h"

namespace modelswap::op {

inline constexpr const char* kReasonAgentMissing = "ModelswapAgentMissing";

struct MissingAgentOptions {
  std::string ns;        // "" = all namespaces
  std::string instance;  // reportingInstance of the Events
  int min_watch_timeout_seconds = 300;
  std::chrono::milliseconds backoff_initial{800};
};

// Whether `pod` should be reported now: asked for injection, has no agent, still running.
bool ShouldReportMissingAgent(const Json& pod);

// The Warning Event for `pod` (core/v1 Event, deterministic name).
Json MissingAgentEvent(const Json& pod, const std::string& instance, int64_t now_unix_nanos);

class MissingAgentCheck {
 public:
  MissingAgentCheck(KubeClient* client, Env* env, MissingAgentOptions opts);
  ~MissingAgentCheck();
  MissingAgentCheck(const MissingAgentCheck&) = delete;
  MissingAgentCheck& operator=(const MissingAgentCheck&) = delete;

  void Start();
  void Stop();
  bool HasSynced() const { return pods_.HasSynced(); }
  // Pods in the cache that should have the agent and do not (the gauge's value).
  size_t Missing() const;
  // Events this replica created (not counting 409s for ones that existed).
  uint64_t events_recorded() const { return events_.load(std::memory_order_relaxed); }
  void RegisterMetrics(OperatorMetrics* metrics);

 private:
  void OnChange(const ObjectPtr& old_obj, const ObjectPtr& new_obj);

  KubeClient* client_;
  Env* env_;
  MissingAgentOptions opts_;
  Store pods_;
  std::unique_ptr<Reflector> reflector_;
  std::mutex mu_;
  std::set<std::string> reported_;  // pod uids; guarded by mu_
  // Relaxed: a monotonic count read for tests and logs; nothing is published with it.
  std::atomic<uint64_t> events_{0};
};

}  // namespace modelswap::op
