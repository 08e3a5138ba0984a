// The sidecar-injection webhook as a pure function: AdmissionReview JSON in, AdmissionReview
// response JSON out. No I/O, no clock, no globals; TLS and HTTP live in server.h and the
// cluster's native-sidecar support is a parameter (native_sidecar.h finds it out).
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
//   - the label modelswap.io/injected: "true" (the operator's pod informer selects on it).
// The pod is never re-serialised, so fields other webhooks set (initContainers[].restartPolicy,
// their own sidecars) survive. Injection is idempotent and converges: on a pod the patch was
// applied to, the function returns no patch; run again after another webhook added a container
// (reinvocationPolicy: IfNeeded), it only mounts and wires that container.
//
// Bad annotations, or names the pod already uses for something else, deny the request with a
// message naming the annotation (or container/volume) and the problem. The response always echoes
// the request's uid.
//
// Thread safety: pure functions; safe to call from any number of threads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "operator/webhook/injection_config.h"

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

// Answers one AdmissionReview request body.
AdmissionOutcome ReviewAdmission(std::string_view request_body, const InjectionConfig& cfg,
                                 bool native_sidecars);

// The JSONPatch operations injecting modelswap into `pod` (an empty array when there is nothing
// to add or the pod did not ask). kInvalidArgument names the bad annotation or clashing name.
// `warnings` (may be null) receives admission warnings: unknown modelswap.io/* annotations, the
// plain-container fallback.
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
