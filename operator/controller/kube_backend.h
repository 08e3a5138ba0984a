// KubeBackend: the reconciler's Backend in a cluster.
//
// Observes from informer caches (reflector + store per resource, each with a label selector so
// only what the operator needs is cached: all ModelVersions; Jobs and their pods labelled
// managed-by=modelswap-operator; pods labelled modelswap.io/injected=true for the agent prober;
// never all pods of the cluster). Executes actions with the API, always from the latest object
// known: the cache, or the answer to the operator's own last write if the watch has not brought
// it yet (an action list made from the object before this pass's finalizer patch must not carry
// that object's resourceVersion into the status write: that was a self-inflicted 409 per create).
//  - finalizers: merge patch of metadata.finalizers with a resourceVersion precondition (the list
//    is replaced whole, so another controller's finalizer added meanwhile must not be lost);
//  - status: merge patch of the status subresource without a resourceVersion (only this
//    operator writes status, one pass per model at a time, from an object never older than its
//    own last write), except when activate-request bookkeeping changes: that is acted on once per
//    value, so it keeps the precondition (409 -> requeue and recompute);
//  - Jobs by create; AlreadyExists of the Job this version owns is done (kAlreadyExists is
//    returned so the controller does not announce it twice), one owned by another object is an
//    error; DeleteTask deletes a Job with propagationPolicy=Background (its pods follow);
//  - Events through an EventRecorder (aggregated; best effort: a lost Event never fails a
//    reconcile).
//
// Thread safety: Observe/Execute from any worker; Start/Stop from the owner.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/env.h"
#include "operator/controller/agent_prober.h"
#include "operator/controller/controller.h"
#include "operator/controller/event_recorder.h"
#include "operator/controller/job.h"
#include "operator/controller/writer_progress.h"
#include "operator/kube/client.h"
#include "operator/kube/reflector.h"
#include "operator/metrics/metrics.h"

namespace modelswap::op {

struct KubeBackendOptions {
  std::string ns;  // "" = all namespaces
  // The writer image; it replaces writer.image (one flag, --sidecar-image, names it).
  std::string sidecar_image = "ghcr.io/modelswap/modelswap-sidecar:0.1.0";
  WriterPodOptions writer;  // the rest of the writer pod's settings (job.h)
  std::string instance;     // reportingInstance of Events (pod name)
  int min_watch_timeout_seconds = 300;
  std::chrono::milliseconds watchdog_grace{30'000};
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds probe_interval{10'000};
  // How often write pods are asked for their progress, and the least time between two changes
  // of a version's status.progress (the reconciler holds faster ones back).
  std::chrono::milliseconds progress_interval{5'000};
  // AgentProbeOptions::max_in_flight and ::rollout_interval (agent_prober.h): probes at once,
  // and how often pods behind a rollout are asked.
  int probe_max_in_flight = 64;
  std::chrono::milliseconds probe_rollout_interval{1'000};
};

class KubeBackend final : public Backend {
 public:
  KubeBackend(KubeClient* client, Env* env, KubeBackendOptions opts);
  ~KubeBackend() override;

  // Starts the informers and the prober; their events enqueue model keys on `controller`.
  void Start(Controller* controller);
  void Stop();
  bool HasSynced() const;

  Result<ModelInputs> Observe(const std::string& model_key) override;
  Status Execute(const Action& action) override;
  // A publish happened: the prober asks the model's pods not serving `version` sooner.
  void VersionActivated(const std::string& model_key, const std::string& version) override {
    if (prober_) prober_->ExpectVersion(model_key, version);
  }

  void RegisterMetrics(OperatorMetrics* metrics);
  const Store& modelversions() const { return mvs_; }
  const Store& jobs() const { return jobs_; }

 private:
  Status WriteStatus(const Action& a);
  Status PatchFinalizers(const ModelVersion& mv, bool add);
  Status StartJob(const Action& a);
  void RecordEvent(const Action& a);
  // The newest state of mv's object the operator knows (same uid, highest resourceVersion).
  Json Latest(const ModelVersion& mv) const;
  std::unique_ptr<Reflector> MakeReflector(Store* store, const ResourceRef& r,
                                           const std::string& selector, Reflector::Handler h);

  KubeClient* client_;
  Env* env_;
  KubeBackendOptions opts_;
  Store mvs_, jobs_, writer_pods_, injected_pods_;
  std::unique_ptr<Reflector> mv_reflector_, job_reflector_, writer_pod_reflector_,
      injected_pod_reflector_;
  std::unique_ptr<AgentProber> prober_;
  std::unique_ptr<WriterProgressProber> progress_prober_;
  EventRecorder events_;

  // Per ModelVersion uid, the newest metadata.generation a watch event showed with
  // spec.activate false. A quick false -> true flip (a rollback of a Superseded version) can
  // happen between two reconciles, which only see the latest object; the event stream sees both.
  // Lost with a relist or restart: the activate-requested-at annotation is the gap-free way.
  void NoteActivation(const ObjectPtr& old_obj, const ObjectPtr& new_obj);
  // A NodeCacheDisabled Event on each injected pod whose modelswap.io/node-cache annotation says
  // "disabled:" (per-pod staging instead of the node cache), once per pod uid.
  void NoteNodeCache(const ObjectPtr& old_obj, const ObjectPtr& new_obj);
  std::mutex node_cache_mu_;
  std::set<std::string> node_cache_reported_;  // pod uids; guarded by node_cache_mu_
  // Jobs this operator created that the Job informer has not delivered yet, by model key: observed
  // as running so that a pass in between does not create them again (an AlreadyExists per create
  // in operator_bench). Dropped once the informer has them, when deleted, or after 30 s (a Job
  // deleted by someone else before the informer saw it must not look running forever).
  struct CreatedJob {
    int64_t at_ns;
    Json job;
  };
  std::mutex created_mu_;
  std::map<std::string, std::map<std::string, CreatedJob>> created_jobs_;  // by model, job key
  std::mutex deactivated_mu_;
  std::map<std::string, int64_t> deactivated_;  // guarded by deactivated_mu_
};

}  // namespace modelswap::op
