// Kubernetes resource types and their REST paths.
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

// Built-in resources (the ModelVersion resource is in operator/api/well_known.h).
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

}  // namespace modelswap::op
