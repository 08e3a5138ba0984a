// Cluster backend: informer caches in, API writes out; see kube_backend.h.
#include "operator/controller/kube_backend.h"

#include <spdlog/spdlog.h>

#include "operator/api/well_known.h"
#include "operator/controller/job.h"
#include "operator/kube/resource.h"
#include "operator/webhook/node_cache_plan.h"

namespace modelswap::op {
namespace {

std::string ModelKeyOfMv(const Json& o) {
  std::string model = Field<std::string>(o, {"spec", "model"});
  return model.empty() ? "" : KeyOf(NamespaceOf(o), model);
}
std::string ModelKeyOfLabel(const Json& o) {
  std::string model = LabelOf(o, kLabelModel);
  return model.empty() ? "" : KeyOf(NamespaceOf(o), model);
}
std::string JobKeyOfPod(const Json& o) {
  std::string job = LabelOf(o, "job-name");
  return job.empty() ? "" : KeyOf(NamespaceOf(o), job);
}

}  // namespace

KubeBackend::KubeBackend(KubeClient* client, Env* env, KubeBackendOptions opts)
    : client_(client),
      env_(env),
      opts_(std::move(opts)),
      mvs_(ModelKeyOfMv),
      jobs_(ModelKeyOfLabel),
      writer_pods_(JobKeyOfPod),
      injected_pods_(),
      events_(client, kManagedBy, opts_.instance) {
  opts_.writer.image = opts_.sidecar_image;
}

KubeBackend::~KubeBackend() {
  Stop();
}

std::unique_ptr<Reflector> KubeBackend::MakeReflector(Store* store, const ResourceRef& r,
                                                      const std::string& selector,
                                                      Reflector::Handler h) {
  ReflectorOptions o;
  o.resource = r;
  o.ns = opts_.ns;
  o.label_selector = selector;
  o.min_watch_timeout_seconds = opts_.min_watch_timeout_seconds;
  o.watchdog_grace = opts_.watchdog_grace;
  o.backoff_initial = opts_.backoff_initial;
  o.name = r.plural + (selector.empty() ? "" : "{" + selector + "}");
  return std::make_unique<Reflector>(client_, store, o, std::move(h), env_);
}

void KubeBackend::Start(Controller* controller) {
  auto by = [controller](std::string (*key_of)(const Json&)) {
    return [controller, key_of](const ObjectPtr& old_obj, const ObjectPtr& new_obj) {
      std::string a = old_obj ? key_of(*old_obj) : "";
      std::string b = new_obj ? key_of(*new_obj) : "";
      if (!a.empty()) controller->Enqueue(a);
      if (!b.empty() && b != a) controller->Enqueue(b);
    };
  };
  std::string managed = std::string(kLabelManagedBy) + "=" + kManagedBy;
  mv_reflector_ = MakeReflector(
      &mvs_, kModelVersions, "",
      [this, enqueue = by(ModelKeyOfMv)](const ObjectPtr& old_obj, const ObjectPtr& new_obj) {
        NoteActivation(old_obj, new_obj);  // before the reconcile the event triggers
        enqueue(old_obj, new_obj);
      });
  job_reflector_ = MakeReflector(&jobs_, kJobs, managed, by(ModelKeyOfLabel));
  writer_pod_reflector_ = MakeReflector(&writer_pods_, kPods, managed, by(ModelKeyOfLabel));
  injected_pod_reflector_ =
      MakeReflector(&injected_pods_, kPods, std::string(kLabelInjected) + "=true",
                    [this](const ObjectPtr& old_obj, const ObjectPtr& new_obj) {
                      NoteNodeCache(old_obj, new_obj);
                    });
  AgentProbeOptions probe;
  probe.interval = opts_.probe_interval;
  probe.rollout_interval = opts_.probe_rollout_interval;
  probe.max_in_flight = opts_.probe_max_in_flight;
  prober_ = std::make_unique<AgentProber>(
      &injected_pods_, [controller](const std::string& key) { controller->Enqueue(key); }, probe);
  for (auto* r : {mv_reflector_.get(), job_reflector_.get(), writer_pod_reflector_.get(),
                  injected_pod_reflector_.get()}) {
    r->Start();
  }
  prober_->Start();
  progress_prober_ = std::make_unique<WriterProgressProber>(
      &writer_pods_, [controller](const std::string& key) { controller->Enqueue(key); },
      opts_.progress_interval);
  progress_prober_->Start();
}

void KubeBackend::Stop() {
  if (prober_) prober_->Stop();
  if (progress_prober_) progress_prober_->Stop();
  for (auto* r : {mv_reflector_.get(), job_reflector_.get(), writer_pod_reflector_.get(),
                  injected_pod_reflector_.get()}) {
    if (r != nullptr) r->Stop();
  }
}

bool KubeBackend::HasSynced() const {
  return mvs_.HasSynced() && jobs_.HasSynced() && writer_pods_.HasSynced() &&
         injected_pods_.HasSynced();
}

void KubeBackend::NoteActivation(const ObjectPtr& old_obj, const ObjectPtr& new_obj) {
  std::lock_guard lock(deactivated_mu_);
  if (!new_obj) {  // deleted
    if (old_obj) deactivated_.erase(Field<std::string>(*old_obj, {"metadata", "uid"}, ""));
    return;
  }
  if (Field<bool>(*new_obj, {"spec", "activate"}, true)) return;
  int64_t& seen = deactivated_[Field<std::string>(*new_obj, {"metadata", "uid"}, "")];
  seen = std::max(seen, Field<int64_t>(*new_obj, {"metadata", "generation"}, 0));
}

Result<ModelInputs> KubeBackend::Observe(const std::string& model_key) {
  if (!HasSynced()) return Fail(Code::kUnavailable, "informer caches not synced yet");
  ModelInputs in;
  std::tie(in.ns, in.model) = SplitKey(model_key);
  for (const ObjectPtr& obj : mvs_.ByIndex(model_key)) {
    auto mv = ParseModelVersion(*obj);
    if (!mv) {
      spdlog::warn("skipping invalid modelversion key={} err=\"{}\"", KeyOf(*obj),
                   mv.error().message());
      continue;
    }
    {
      std::lock_guard lock(deactivated_mu_);
      if (auto it = deactivated_.find(mv->uid); it != deactivated_.end())
        mv->deactivated_generation = it->second;
    }
    in.versions.push_back(std::move(*mv));
  }
  for (const ObjectPtr& job : jobs_.ByIndex(model_key)) {
    TaskObservation t = ObserveJob(*job, writer_pods_.ByIndex(KeyOf(*job)));
    if (progress_prober_ && t.kind == TaskKind::kWrite &&
        t.state == TaskObservation::State::kRunning)
      t.progress = progress_prober_->For(KeyOf(*job));
    in.tasks.push_back(std::move(t));
  }
  {
    std::lock_guard lock(created_mu_);
    auto pending = created_jobs_.find(model_key);
    if (pending != created_jobs_.end()) {
      for (auto it = pending->second.begin(); it != pending->second.end();) {
        if (jobs_.Get(it->first) != nullptr ||
            env_->NowMonotonicNanos() - it->second.at_ns > 30'000'000'000) {
          it = pending->second.erase(it);  // the informer has it now (or never will)
          continue;
        }
        in.tasks.push_back(ObserveJob(it->second.job, {}));
        ++it;
      }
      if (pending->second.empty()) created_jobs_.erase(pending);
    }
  }
  in.load = prober_ ? prober_->LoadFor(model_key) : ModelLoad{true, 0, {}};
  if (prober_) {
    AgentReach reach = prober_->ReachFor(model_key);
    in.load.unreachable = reach.unreachable;
    // The example may name a pod not running yet; only an agent that failed is one here.
    if (reach.unreachable > 0) in.load.unreachable_example = reach.example;
    in.load.per_pod_staging = prober_->PerPodStagingFor(model_key);
  }
  in.now_unix_ns = env_->NowUnixNanos();
  in.progress_interval_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.progress_interval).count();
  return in;
}

Json KubeBackend::Latest(const ModelVersion& mv) const {
  ObjectPtr cached = mvs_.Get(KeyOf(mv.ns, mv.name));
  if (cached && UidOf(*cached) == mv.uid &&
      std::strtoull(ResourceVersionOf(*cached).c_str(), nullptr, 10) >
          std::strtoull(mv.resource_version.c_str(), nullptr, 10)) {
    return *cached;
  }
  return *mv.raw;
}

Status KubeBackend::Execute(const Action& a) {
  switch (a.type) {
    case Action::Type::kAddFinalizer:
      return PatchFinalizers(a.mv, true);
    case Action::Type::kRemoveFinalizer:
      return PatchFinalizers(a.mv, false);
    case Action::Type::kStartTask:
      return StartJob(a);
    case Action::Type::kDeleteTask: {
      {
        std::lock_guard lock(created_mu_);
        if (auto it = created_jobs_.find(KeyOf(a.mv.ns, a.mv.model)); it != created_jobs_.end())
          it->second.erase(KeyOf(a.mv.ns, a.task_name));
      }
      auto r = client_->Delete(kJobs, a.mv.ns, a.task_name, "Background");
      if (!r && r.error().code() != Code::kNotFound) return Fail(r.error());
      spdlog::info("job deleted job={}/{} task={}", a.mv.ns, a.task_name,
                   TaskKindName(a.task_kind));
      return Ok();
    }
    case Action::Type::kWriteStatus:
      return WriteStatus(a);
    case Action::Type::kEvent:
      RecordEvent(a);
      return Ok();
  }
  return Fail(Code::kInternal, "unknown action");
}

Status KubeBackend::StartJob(const Action& a) {
  const ModelVersion& mv = a.mv;
  Json job = BuildJob(mv, a.task_kind, a.task_name, opts_.writer, a.task_request);
  auto created = client_->Create(kJobs, mv.ns, job);
  if (created) {
    spdlog::info("job created job={}/{} task={}", mv.ns, a.task_name, TaskKindName(a.task_kind));
    std::lock_guard lock(created_mu_);
    created_jobs_[KeyOf(mv.ns, mv.model)][KeyOf(mv.ns, a.task_name)] = {env_->NowMonotonicNanos(),
                                                                        std::move(*created)};
    return Ok();
  }
  if (created.error().code() != Code::kAlreadyExists) return Fail(created.error());
  // Names are deterministic (task.h): the Job is ours unless a deleted and recreated object of
  // the same name left one behind that the garbage collector has not removed yet.
  if (ObjectPtr existing = jobs_.Get(KeyOf(mv.ns, a.task_name))) {
    for (const auto& ref : Field<Json>(*existing, {"metadata", "ownerReferences"}, Json::array())) {
      if (Field<bool>(ref, {"controller"}) && Field<std::string>(ref, {"uid"}) != mv.uid) {
        return Fail(Code::kUnavailable, "job " + a.task_name + " exists, owned by uid " +
                                            Field<std::string>(ref, {"uid"}) +
                                            " (an earlier object of this name): waiting for "
                                            "its garbage collection");
      }
    }
  }
  return Fail(Code::kAlreadyExists, "job " + a.task_name + " exists already");
}

Status KubeBackend::PatchFinalizers(const ModelVersion& mv, bool add) {
  Json latest = Latest(mv);
  Json finalizers = Json::array();
  for (const auto& f : Field<Json>(latest, {"metadata", "finalizers"}, Json::array())) {
    if (f != kFinalizer) finalizers.push_back(f);
  }
  if (add) finalizers.push_back(kFinalizer);
  // The list is replaced whole: the resourceVersion makes it a compare-and-swap (a stale one is
  // a 409 Conflict, patch-stale-409.http; a JSON patch's failed `test` would be a 422 instead,
  // v1.32/create-conflicts-409.http). null removes the field, as the recording's release does
  // (v1.32/delete-with-finalizer-and-watch.http).
  Json patch = {{"metadata",
                 {{"resourceVersion", ResourceVersionOf(latest)},
                  {"finalizers", finalizers.empty() ? Json() : finalizers}}}};
  auto r = client_->Patch(kModelVersions, mv.ns, mv.name, PatchType::kMerge, patch, false);
  if (!r && !add && r.error().code() == Code::kNotFound) return Ok();
  if (!r) return Fail(r.error());
  if (NameOf(*r) == mv.name) mvs_.UpsertIfNewer(std::move(*r));
  return Ok();
}

// A merge patch that makes `from` into `to`: `to` itself, plus null for every key of `from` it
// lacks (recursively in objects; arrays are replaced whole by a merge patch).
static Json MergePatchTo(const Json& from, const Json& to) {
  if (!from.is_object() || !to.is_object()) return to;
  Json patch = to;
  for (const auto& [k, v] : from.items()) {
    auto it = to.find(k);
    if (it == to.end()) {
      patch[k] = nullptr;
    } else if (v.is_object() && it->is_object()) {
      patch[k] = MergePatchTo(v, *it);
    }
  }
  return patch;
}

Status KubeBackend::WriteStatus(const Action& a) {
  Json latest = Latest(a.mv);
  Json status = StatusToJson(a.status);
  Json patch = {{"status", MergePatchTo(Field<Json>(latest, {"status"}, Json::object()), status)}};
  auto prior = ParseModelVersion(latest);
  const bool request_bookkeeping =
      !prior ||
      prior->status.last_handled_activate_request != a.status.last_handled_activate_request ||
      prior->status.activate_requests_handled != a.status.activate_requests_handled;
  if (request_bookkeeping) patch["metadata"] = {{"resourceVersion", ResourceVersionOf(latest)}};
  MS_ASSIGN_OR_RETURN(Json updated, client_->Patch(kModelVersions, a.mv.ns, a.mv.name,
                                                   PatchType::kMerge, patch, true));
  spdlog::info("status mv={}/{} phase={}", a.mv.ns, a.mv.name, PhaseName(a.status.phase));
  mvs_.UpsertIfNewer(std::move(updated));
  return Ok();
}

// The webhook cannot put an Event on a pod it admits (no uid yet), so the operator does, once per
// pod uid, when its informer first shows the pod with a "disabled:" node-cache annotation.
// Runs on the injected-pod reflector's thread: at most one API call per newly seen pod. A failed
// create is retried on the pod's next change. After a leader change the new leader records the
// Event again (the recorder names Events by time; missing_agent.h names them by pod instead).
void KubeBackend::NoteNodeCache(const ObjectPtr& old_obj, const ObjectPtr& new_obj) {
  if (!new_obj) {
    std::lock_guard lock(node_cache_mu_);
    if (old_obj) node_cache_reported_.erase(UidOf(*old_obj));
    return;
  }
  const Json& pod = *new_obj;
  std::string why = NodeCacheFallbackReason(pod);
  if (why.empty() || IsBeingDeleted(pod)) return;
  const std::string uid = UidOf(pod);
  {
    std::lock_guard lock(node_cache_mu_);
    if (!node_cache_reported_.insert(uid).second) return;
  }
  int count = events_.Record({kPods, NamespaceOf(pod), NameOf(pod), uid, ResourceVersionOf(pod)},
                             "Normal", kReasonNodeCacheDisabled, why, env_->NowUnixNanos());
  if (count == 0) {
    std::lock_guard lock(node_cache_mu_);
    node_cache_reported_.erase(uid);  // not recorded: try again on the pod's next change
  }
}

void KubeBackend::RecordEvent(const Action& a) {
  const ModelVersion& mv = a.mv;
  events_.Record({kModelVersions, mv.ns, mv.name, mv.uid, mv.resource_version}, a.event_type,
                 a.reason, a.message, env_->NowUnixNanos());
}

void KubeBackend::RegisterMetrics(OperatorMetrics* metrics) {
  metrics->AddSampler([this](OperatorMetrics& m) {
    const std::pair<const char*, Reflector*> refs[] = {
        {"modelversions", mv_reflector_.get()},
        {"jobs", job_reflector_.get()},
        {"writer_pods", writer_pod_reflector_.get()},
        {"injected_pods", injected_pod_reflector_.get()}};
    for (const auto& [name, r] : refs) {
      if (r == nullptr) continue;
      // Cumulative counts kept by the reflectors: counters, so rate() works across restarts.
      m.SampleCounter("modelswap_operator_watch_restarts_total", "Watch streams reopened",
                      {{"resource", name}}, static_cast<double>(r->watch_restarts()));
      m.SampleCounter("modelswap_operator_relists_total", "Full lists done", {{"resource", name}},
                      static_cast<double>(r->lists()));
    }
    m.Gauge("modelswap_operator_cached_modelversions", "ModelVersions in the cache")
        .Set(static_cast<double>(mvs_.size()));
  });
}

}  // namespace modelswap::op
