// Controller: work queue + workers that run the reconciler for one model key at a time.
//
// A key is "namespace/model". A worker takes a key, asks the Backend for the model's inputs,
// calls Decide() and executes the actions in order through the Backend, stopping at the first
// error. Error policy (controller-runtime's four cases): success -> Forget the key's backoff and
// requeue after the decision's resync period; an error -> rate-limited requeue (a Retry-After
// from the server is honoured as a minimum); 409 Conflict is the common case: the next pass
// reads the newer object the watch delivers, so no update is lost. The work queue guarantees
// one key is never on two workers, so actions for a model never race each other.
//
// Thread safety: Enqueue from any thread (event handlers); Start/Stop from the owner.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/env.h"
#include "operator/controller/reconciler.h"
#include "operator/kube/workqueue.h"
#include "operator/metrics/metrics.h"

namespace modelswap::op {

// What differs between cluster and standalone mode.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Result<ModelInputs> Observe(const std::string& model_key) = 0;
  // StartTask of a task that exists already is idempotent: it returns kAlreadyExists (or OK),
  // which the controller counts as success (skipping the TaskStarted Event that follows it).
  virtual Status Execute(const Action& action) = 0;
  // `version` of model_key just turned Active (its status write with phase Active succeeded):
  // a publish happened, so the model's agents are about to swap. A backend that probes agents
  // asks the pods not yet serving it sooner (AgentProber::ExpectVersion). Default: nothing.
  virtual void VersionActivated(const std::string& model_key, const std::string& version) {
    (void)model_key;
    (void)version;
  }
};

struct ControllerOptions {
  int workers = 2;
  WorkQueueOptions queue;
};

class Controller {
 public:
  Controller(Backend* backend, Env* env, OperatorMetrics* metrics, ControllerOptions opts = {});
  ~Controller();

  void Enqueue(const std::string& model_key);
  void Start();
  void Stop();
  // One pass for a key, on the caller's thread (tests, benchmarks).
  Status ReconcileOnce(const std::string& model_key);

  WorkQueue& queue() { return queue_; }
  uint64_t passes() const { return passes_.load(std::memory_order_relaxed); }

 private:
  void Worker();

  Backend* backend_;
  Env* env_;
  OperatorMetrics* metrics_;
  ControllerOptions opts_;
  WorkQueue queue_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};    // relaxed: workers also wake via queue shutdown
  std::atomic<uint64_t> passes_{0};  // relaxed: a statistic
};

}  // namespace modelswap::op
