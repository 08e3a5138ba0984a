// Validation of the pod fields a writer Job takes from the operator's flags or a ModelVersion's
// spec.writer: serviceAccountName, imagePullSecrets, nodeSelector, tolerations, imagePullPolicy.
//
// The rules are the API server's own (k8s.io/apimachinery/pkg/util/validation: DNS-1123
// subdomains, qualified label names and values; k8s.io/kubernetes/pkg/apis/core/validation
// validateTolerations), so a bad value is refused where it is given (at start for a flag, at
// parse for a spec; in standalone mode no API server checks the files) instead of the Job create
// failing later with a 422 that only the operator's log shows. Errors name the field and the rule.
// Thread safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"
#include "operator/kube/object.h"

namespace modelswap::op {

// DNS-1123 subdomain (<= 253): ServiceAccount and Secret names.
Status ValidateObjectName(std::string_view name, std::string_view field);
// A qualified label key ([prefix/]name) and a label value.
Status ValidateLabelKey(std::string_view key, std::string_view field);
Status ValidateLabelValue(std::string_view value, std::string_view field);
// "KEY=VALUE" (the --writer-node-selector flag) into `out`; a key given twice is an error.
Status ParseNodeSelectorEntry(std::string_view entry, std::map<std::string, std::string>* out);
// A corev1 tolerations array: only key, operator, value, effect, tolerationSeconds; operator
// Exists or Equal (default Equal); Exists takes no value; an empty key needs Exists; effect
// NoSchedule, PreferNoSchedule, NoExecute or empty; tolerationSeconds only with NoExecute.
Status ValidateTolerations(const Json& tolerations, std::string_view field);
// Always | IfNotPresent | Never.
Status ValidateImagePullPolicy(std::string_view policy, std::string_view field);

}  // namespace modelswap::op
