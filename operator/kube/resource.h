// The Kubernetes resources the operator touches, and their REST paths.
//
// A ResourceRef names a resource type (group, version, plural); Path() builds the URL path of a
// collection, an object or its status subresource, in a namespace or across all of them
// (ns == ""). Thread safety: plain values.
#pragma once

#include <string>

namespace modelswap::op {

struct ResourceRef {
  std::string group;    // "" for the core group
  std::string version;  // v1, v1alpha1, ...
  std::string plural;   // modelversions, jobs, ...
  std::string kind;     // ModelVersion, Job, ... (for objects the operator builds)

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }

  // /api/v1/namespaces/NS/pods[/NAME[/status]] or /apis/G/V/... ; ns "" = all namespaces.
  std::string Path(const std::string& ns, const std::string& name = "", bool status = false) const {
    std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
    if (!ns.empty()) p += "/namespaces/" + ns;
    p += "/" + plural;
    if (!name.empty()) p += "/" + name;
    if (!name.empty() && status) p += "/status";
    return p;
  }
};

inline const ResourceRef kModelVersions{"modelswap.io", "v1alpha1", "modelversions",
                                        "ModelVersion"};
inline const ResourceRef kJobs{"batch", "v1", "jobs", "Job"};
inline const ResourceRef kPods{"", "v1", "pods", "Pod"};
inline const ResourceRef kEvents{"", "v1", "events", "Event"};
inline const ResourceRef kLeases{"coordination.k8s.io", "v1", "leases", "Lease"};
// The webhook's certificate Secret (in the operator's namespace) and its own
// MutatingWebhookConfiguration (cluster-scoped: ns "").
inline const ResourceRef kSecrets{"", "v1", "secrets", "Secret"};
inline const ResourceRef kMutatingWebhookConfigurations{"admissionregistration.k8s.io", "v1",
                                                        "mutatingwebhookconfigurations",
                                                        "MutatingWebhookConfiguration"};

// Labels and names shared by the operator, the webhook and the chart.
inline constexpr const char* kFinalizer = "modelswap.io/finalizer";
inline constexpr const char* kLabelModel = "modelswap.io/model";
inline constexpr const char* kLabelVersion = "modelswap.io/version";
inline constexpr const char* kLabelOwner = "modelswap.io/modelversion";
inline constexpr const char* kLabelTask = "modelswap.io/task";
inline constexpr const char* kLabelManagedBy = "app.kubernetes.io/managed-by";
inline constexpr const char* kManagedBy = "modelswap-operator";
inline constexpr const char* kLabelInjected = "modelswap.io/injected";
// The opt-in label the chart's webhook objectSelector routes on (values.yaml
// webhook.objectSelector): pods that asked for injection, injected or not.
inline constexpr const char* kLabelInjectOptIn = "modelswap.io/inject";
inline constexpr const char* kAnnotationModels = "modelswap.io/models";
inline constexpr const char* kAnnotationGeneration = "modelswap.io/generation";
// A request to (re)publish a ModelVersion: any new value asks once (like Flux's
// reconcile.fluxcd.io/requestedAt); status.lastHandledActivateRequest records the value handled.
// Also set on the publish Job made for the request, naming the request it serves.
inline constexpr const char* kAnnotationActivateRequest = "modelswap.io/activate-requested-at";
// On a publish Job for a request: the request's number (see ActivateRequest in task.h).
inline constexpr const char* kAnnotationActivateRequestNumber =
    "modelswap.io/activate-request-number";

}  // namespace modelswap::op
