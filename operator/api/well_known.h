// The modelswap API's well-known names: the ModelVersion resource, and the labels, annotations
// and finalizer the operator, the webhook and the chart share (charts/modelswap keeps the same
// strings). Thread safety: constants.
#pragma once

#include "operator/kube/resource.h"

namespace modelswap::op {

inline const ResourceRef kModelVersions{"modelswap.io", "v1alpha1", "modelversions",
                                        "ModelVersion"};

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
