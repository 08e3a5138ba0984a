// Cluster mode: the operator against a Kubernetes API server (in a pod or with a kubeconfig).
//
// Order of start: API client -> health/metrics server (every replica serves it, leader or not)
// -> leader election (if enabled; a standby waits here) -> informers -> wait for their first
// full lists (readiness) -> workers. Losing the lease ends the process at once (exit code 1),
// like controller-runtime: a replica that may no longer be leader must not write anything.
// SIGTERM stops workers and informers and releases the lease so a standby takes over without
// waiting for it to expire.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "operator/leaderelection.h"

namespace modelswap::op {

struct ClusterOptions {
  std::string kubeconfig;  // "" = $KUBECONFIG, in-cluster, then ~/.kube/config
  std::string context;
  std::string ns;  // "" = all namespaces
  std::string sidecar_image = "ghcr.io/modelswap/modelswap-sidecar:0.1.0";
  std::string metrics_addr = ":8080";
  bool leader_elect = false;
  LeaderElectionConfig election;  // ns "" = the pod's namespace or "default"
  int workers = 2;
  int watch_timeout_seconds = 300;
  std::chrono::milliseconds probe_interval{10'000};
};

// Returns the process exit code.
int RunCluster(ClusterOptions opts, const std::atomic<bool>& stop);

}  // namespace modelswap::op
