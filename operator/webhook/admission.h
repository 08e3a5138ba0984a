// The sidecar-injection webhook as a pure function: AdmissionReview JSON in, AdmissionReview
// response JSON out. No I/O, no clock, no globals; TLS and HTTP live in server.h and the
// cluster's native-sidecar support is a parameter (native_sidecar.h finds it out). The review
// handling is admission.cc, the patch injection_patch.cc, the chunk cache's choice
// node_cache_plan.cc, the pod accessors they share pod_json.cc.
//
// A pod that asks for injection (injection_config.h: annotation modelswap.io/inject: "true" plus
// modelswap.io/models) gets a minimal JSONPatch (RFC 6902) that only ADDS what is missing:
//   - the agent container "modelswap-agent": a native sidecar (first init container,
//     restartPolicy Always, startupProbe on /readyz, so app containers start once the models are
//     loaded) when native_sidecars, else the first regular container with a postStart hook that
//     blocks until the agent is ready (kubelet starts containers in order, one hook at a time);
//   - volumes "modelswap-models" (the model PVC, read-only) and "modelswap-shm" (emptyDir,
//     medium Memory, sizeLimit), mounted into every container at the model root and shm dir;
//   - MODELSWAP_ROOT / _MODELS / _SHM_DIR / _AGENT_URL in every container that lacks them;
//   - the label modelswap.io/injected: "true" (the operator's pod informer selects on it);
//   - the chunk cache (PlanNodeCache, node_cache_plan.h): where a node cache is configured and the
//   namespace's Pod
//     Security level allows hostPath ("privileged": namespace_policy.h), the hostPath volume
//     "modelswap-cache", read-write in the agent (--cache-dir, --cache-max-bytes) and read-only
//     (recursiveReadOnly: IfPossible) in every other container at the same path; else, with a
//     stage dir configured, a disk emptyDir "modelswap-stage" (agent --stage-dir, read-only in
//     the apps); and the annotation modelswap.io/node-cache saying which and why.
// The pod is never re-serialised, so fields other webhooks set (initContainers[].restartPolicy,
// their own sidecars) survive. Injection is idempotent and converges: on a pod the patch was
// applied to, the function returns no patch; run again after another webhook added a container
// (reinvocationPolicy: IfNeeded), it only mounts and wires that container.
//
// Bad annotations, or names the pod already uses for something else, deny the request with a
// message naming the annotation (or container/volume) and the problem. The response always echoes
// the request's uid.
//
// Thread safety: pure functions (apart from the namespace lookup the context supplies, which
// must be thread-safe); safe to call from any number of threads.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "operator/webhook/injection_config.h"
#include "operator/webhook/node_cache_plan.h"

namespace modelswap::op {

inline constexpr const char* kAdmissionApiVersion = "admission.k8s.io/v1";

// What the webhook decided, for logs and metrics; the body is what goes back on the wire.
enum class AdmissionVerdict {
  kSkipped,     // not a pod CREATE, or the pod did not ask for injection
  kUnchanged,   // asked for injection, already injected: allowed without a patch
  kPatched,     // allowed with a JSONPatch
  kDenied,      // allowed: false (bad annotations, clashing names)
  kBadRequest,  // not a v1 AdmissionReview we can answer (HTTP 400)
};

struct AdmissionOutcome {
  int http_status = 200;
  std::string body;  // compact AdmissionReview JSON
  AdmissionVerdict verdict = AdmissionVerdict::kSkipped;
  std::string message;  // the denial or error message; empty otherwise
};

// What the admission decision depends on besides the config.
struct AdmissionContext {
  bool native_sidecars = false;
  NamespaceLevelFn namespace_level;  // null: unknown, so no hostPath
};

// Answers one AdmissionReview request body.
AdmissionOutcome ReviewAdmission(std::string_view request_body, const InjectionConfig& cfg,
                                 const AdmissionContext& ctx);
// The same without namespace lookups (tests, benchmarks): no hostPath.
AdmissionOutcome ReviewAdmission(std::string_view request_body, const InjectionConfig& cfg,
                                 bool native_sidecars);

// The JSONPatch operations injecting modelswap into `pod` (an empty array when there is nothing
// to add or the pod did not ask). kInvalidArgument names the bad annotation or clashing name.
// `warnings` (may be null) receives admission warnings: unknown modelswap.io/* annotations, the
// plain-container fallback.
// `ns` is the namespace the pod is created in (the AdmissionRequest's; "" = the pod's own
// metadata.namespace).
[[nodiscard]] Result<nlohmann::json> BuildInjectionPatch(const nlohmann::json& pod,
                                                         const InjectionConfig& cfg,
                                                         const AdmissionContext& ctx,
                                                         const std::string& ns,
                                                         std::vector<std::string>* warnings);
// The same without namespace lookups: no hostPath.
[[nodiscard]] Result<nlohmann::json> BuildInjectionPatch(const nlohmann::json& pod,
                                                         const InjectionConfig& cfg,
                                                         bool native_sidecars,
                                                         std::vector<std::string>* warnings);

// Whether `pod` asked for injection (injection_config.h WantsInjection) but has no agent container:
// created while the webhook was unreachable under failurePolicy Ignore. For the operator's
// check that reports such pods (Warning Event, metric).
bool PodMissingAgent(const nlohmann::json& pod);

// RFC 6901: "~" -> "~0", "/" -> "~1" (so "modelswap.io/injected" -> "modelswap.io~1injected").
std::string JsonPointerEscape(std::string_view token);

}  // namespace modelswap::op
