// Cluster mode: the operator against a Kubernetes API server (in a pod or with a kubeconfig).
//
// Order of start: API client -> injection webhook (when enabled: every replica serves it, leader
// or not; its certificate loads in the background) -> health/metrics server (every replica)
// -> leader election (if enabled; a standby waits here) -> informers -> wait for their first
// full lists (readiness) -> workers. Losing the lease ends the process at once (exit code 1),
// like controller-runtime: a replica that may no longer be leader must not write anything.
// SIGTERM stops workers and informers and releases the lease so a standby takes over without
// waiting for it to expire. /readyz: a standby is ready once the webhook has a certificate (or at
// once without a webhook); the leader additionally once its caches have synced.
// The leader also runs the missing-agent check (missing_agent.h).
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "operator/controller/job.h"
#include "operator/kube/leaderelection.h"
#include "operator/webhook/runtime.h"

namespace modelswap::op {

struct ClusterOptions {
  std::string kubeconfig;  // "" = $KUBECONFIG, in-cluster, then ~/.kube/config
  std::string context;
  std::string ns;  // "" = all namespaces
  std::string sidecar_image = "ghcr.io/modelswap/modelswap-sidecar:0.1.0";
  WriterPodOptions writer;  // writer pods' settings besides the image (job.h)
  std::string metrics_addr = ":8080";
  bool leader_elect = false;
  LeaderElectionConfig election;  // ns "" = the pod's namespace or "default"
  int workers = 2;
  int watch_timeout_seconds = 300;
  std::chrono::milliseconds probe_interval{10'000};
  int probe_max_in_flight = 64;                             // KubeBackendOptions, > 0
  std::chrono::milliseconds probe_rollout_interval{1'000};  // KubeBackendOptions, > 0
  std::chrono::milliseconds writer_progress_interval{
      5'000};  // KubeBackendOptions::progress_interval
  // webhook.addr "" = no webhook. webhook.ns "" = $POD_NAMESPACE, else the kubeconfig's
  // namespace, else "default".
  WebhookRuntimeOptions webhook;
};

// Returns the process exit code.
int RunCluster(ClusterOptions opts, const std::atomic<bool>& stop);

}  // namespace modelswap::op
