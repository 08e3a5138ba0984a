// KubeBackend: the reconciler's Backend in a cluster.
//
// Observes from informer caches (reflector + store per resource, each with a label selector so
// only what the operator needs is cached: all ModelVersions; Jobs and their pods labelled
// managed-by=modelswap-operator; pods labelled modelswap.io/injected=true for the agent prober;
// never all pods of the cluster). Executes actions with the API: finalizers by patch with a
// resourceVersion precondition, Jobs by create (AlreadyExists = done), status by PUT to the
// status subresource carrying the cached resourceVersion (409 -> the controller requeues and
// recomputes from the newer object), Events by create (best effort: a lost Event never fails a
// reconcile).
//
// Thread safety: Observe/Execute from any worker; Start/Stop from the owner.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/env.h"
#include "operator/controller/agent_prober.h"
#include "operator/controller/controller.h"
#include "operator/kube/client.h"
#include "operator/kube/reflector.h"
#include "operator/metrics/metrics.h"

namespace modelswap::op {

struct KubeBackendOptions {
  std::string ns;  // "" = all namespaces
  std::string sidecar_image = "ghcr.io/modelswap/modelswap-sidecar:0.1.0";
  std::string instance;  // reportingInstance of Events (pod name)
  int min_watch_timeout_seconds = 300;
  std::chrono::milliseconds watchdog_grace{30'000};
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds probe_interval{10'000};
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

  void RegisterMetrics(OperatorMetrics* metrics);
  const Store& modelversions() const { return mvs_; }
  const Store& jobs() const { return jobs_; }

 private:
  Status WriteStatus(const Action& a);
  Status RemoveFinalizer(const ModelVersion& mv);
  void RecordEvent(const Action& a);
  std::unique_ptr<Reflector> MakeReflector(Store* store, const ResourceRef& r,
                                           const std::string& selector, Reflector::Handler h);

  KubeClient* client_;
  Env* env_;
  KubeBackendOptions opts_;
  Store mvs_, jobs_, writer_pods_, injected_pods_;
  std::unique_ptr<Reflector> mv_reflector_, job_reflector_, writer_pod_reflector_,
      injected_pod_reflector_;
  std::unique_ptr<AgentProber> prober_;

  // Per ModelVersion uid, the newest metadata.generation a watch event showed with
  // spec.activate false. A quick false -> true flip (a rollback of a Superseded version) can
  // happen between two reconciles, which only see the latest object; the event stream sees both.
  // Lost with a relist or restart: the activate-requested-at annotation is the gap-free way.
  void NoteActivation(const ObjectPtr& old_obj, const ObjectPtr& new_obj);
  std::mutex deactivated_mu_;
  std::map<std::string, int64_t> deactivated_;  // guarded by deactivated_mu_
};

}  // namespace modelswap::op
