// Reports opted-in pods running without the agent; see missing_agent.h.
#include "operator/webhook/missing_agent.h"

#include <spdlog/spdlog.h>

#include "operator/api/well_known.h"
#include "operator/kube/resource.h"
#include "operator/webhook/admission.h"
#include "operator/webhook/injection_config.h"

namespace modelswap::op {
namespace {

// "<pod>.modelswap-agent-missing.<uid prefix>": at most 253 bytes, a DNS subdomain because pod
// names are. The uid tells a re-created pod of the same name (StatefulSet) from the old one.
std::string EventName(const Json& pod) {
  std::string uid = UidOf(pod).substr(0, 8);
  std::string name = NameOf(pod).substr(0, 200);
  return name + ".modelswap-agent-missing" + (uid.empty() ? "" : "." + uid);
}

}  // namespace

bool ShouldReportMissingAgent(const Json& pod) {
  if (IsBeingDeleted(pod)) return false;
  std::string phase = Field<std::string>(pod, {"status", "phase"});
  if (phase == "Succeeded" || phase == "Failed") return false;
  return PodMissingAgent(pod);
}

Json MissingAgentEvent(const Json& pod, const std::string& instance, int64_t now_unix_nanos) {
  std::string now = FormatTime(now_unix_nanos);
  std::string message =
      "pod asked for the modelswap agent (" + std::string(kAnnotationInject) +
      ": \"true\") but has no " + kAgentContainerName +
      " container: it was admitted while the injection webhook was unreachable "
      "(failurePolicy Ignore). Delete the pod so that its controller re-creates it with the agent.";
  return {{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", EventName(pod)}, {"namespace", NamespaceOf(pod)}}},
          {"involvedObject",
           {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"name", NameOf(pod)},
            {"namespace", NamespaceOf(pod)},
            {"uid", UidOf(pod)},
            {"resourceVersion", ResourceVersionOf(pod)}}},
          {"reason", kReasonAgentMissing},
          {"message", message},
          {"type", "Warning"},
          {"source", {{"component", kManagedBy}}},
          {"reportingComponent", kManagedBy},
          {"reportingInstance", instance},
          {"firstTimestamp", now},
          {"lastTimestamp", now},
          {"count", 1}};
}

MissingAgentCheck::MissingAgentCheck(KubeClient* client, Env* env, MissingAgentOptions opts)
    : client_(client), env_(env), opts_(std::move(opts)) {}

MissingAgentCheck::~MissingAgentCheck() {
  Stop();
}

void MissingAgentCheck::Start() {
  if (reflector_) return;
  ReflectorOptions o;
  o.resource = kPods;
  o.ns = opts_.ns;
  o.label_selector = std::string(kLabelInjectOptIn) + "=true";
  o.min_watch_timeout_seconds = opts_.min_watch_timeout_seconds;
  o.backoff_initial = opts_.backoff_initial;
  o.name = "pods{" + o.label_selector + "}";
  reflector_ = std::make_unique<Reflector>(
      client_, &pods_, o,
      [this](const ObjectPtr& old_obj, const ObjectPtr& new_obj) { OnChange(old_obj, new_obj); },
      env_);
  reflector_->Start();
}

void MissingAgentCheck::Stop() {
  if (reflector_) reflector_->Stop();
}

size_t MissingAgentCheck::Missing() const {
  size_t n = 0;
  for (const ObjectPtr& pod : pods_.List())
    n += ShouldReportMissingAgent(*pod) ? 1 : 0;
  return n;
}

void MissingAgentCheck::OnChange(const ObjectPtr& old_obj, const ObjectPtr& new_obj) {
  if (!new_obj) {
    if (old_obj) {
      std::lock_guard lock(mu_);
      reported_.erase(UidOf(*old_obj));
    }
    return;
  }
  if (!ShouldReportMissingAgent(*new_obj)) return;
  std::string uid = UidOf(*new_obj);
  {
    std::lock_guard lock(mu_);
    if (reported_.count(uid) != 0) return;
  }
  Json ev = MissingAgentEvent(*new_obj, opts_.instance, env_->NowUnixNanos());
  auto created = client_->Create(kEvents, NamespaceOf(*new_obj), ev);
  if (!created && created.error().code() != Code::kAlreadyExists) {
    spdlog::warn("event not recorded pod={} reason={} err=\"{}\"", KeyOf(*new_obj),
                 kReasonAgentMissing, created.error().message());
    return;  // retried on the pod's next change
  }
  if (created) {
    events_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("pod running without the modelswap agent pod={}", KeyOf(*new_obj));
  }
  std::lock_guard lock(mu_);
  reported_.insert(uid);
}

void MissingAgentCheck::RegisterMetrics(OperatorMetrics* metrics) {
  metrics->AddSampler([this](OperatorMetrics& m) {
    m.Gauge("modelswap_pods_missing_agent",
            "Pods labelled modelswap.io/inject=true that run without the modelswap agent")
        .Set(static_cast<double>(Missing()));
  });
}

}  // namespace modelswap::op
