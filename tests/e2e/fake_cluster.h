// FakeCluster: the in-repo fake API server (tests/operator/fake) as a target for the end-to-end
// suite, so the suite's request sequences run in ordinary CI where no real control plane exists.
//
// It adds what kube-controller-manager's job controller does and the fake lacks, driven only
// through the fake's public API and HTTP (the fake itself is not changed):
//   - for every Job created, one Pending pod (generateName <job>-, the template's labels and
//     spec, a controller ownerReference to the Job, finalizer batch.kubernetes.io/job-tracking)
//     and Job status {startTime, active 1, ready 0, terminating 0, uncountedTerminatedPods {}};
//   - once that pod is Succeeded or Failed (a test played the kubelet through pods/status), the
//     Job's terminal status as v1.32's controller writes it
//     (v1.32/job-succeeded-by-controller.http, job-failed-by-controller.http: SuccessCriteriaMet +
//     Complete, or FailureTarget + Failed with BackoffLimitExceeded), and the pod's finalizer
//     removed.
// It does not do what needs a scheduler or kubelet (pods stay Pending, no nodeName), garbage
// collection, or retries of failed pods (tests use backoffLimit 0 for failures).
//
// Thread safety: Get() from any thread; the controller runs on its own thread.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "operator/kube/http_client.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::op::e2e {

class FakeCluster {
 public:
  // The process-wide instance, started on first use.
  static FakeCluster* Get();
  ~FakeCluster();

  const std::string& kubeconfig() const { return kubeconfig_; }
  // An API server restart: connections and watches cut, the watch cache starts anew.
  void RestartApiServer() { server_.Restart(); }

 private:
  FakeCluster();
  void Run();
  void StartPod(const Json& job);
  void FinishJobs();

  fake::FakeApiServer server_;
  testing::TempDir dir_;
  std::string kubeconfig_;
  std::unique_ptr<HttpKubeClient> client_;
  std::mutex mu_;
  std::deque<Json> created_;  // Jobs whose pod is still to be made; guarded by mu_
  // Written by the destructor, read by the controller loop: relaxed is enough, the flag carries
  // no other data and join() orders the rest.
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace modelswap::op::e2e
