// Kubernetes Jobs for tasks: building the Job a task runs as, and reading a Job (and its pods)
// back into a TaskObservation.
//
// The Job: image from spec.writer.image or --sidecar-image; args per task.h; the PVC from
// spec.storage mounted at spec.storage.root; ownerReference (controller) to the ModelVersion so
// deleting it garbage-collects the Job; labels for the operator's informers (managed-by, model,
// version, modelversion, task); annotations with the ModelVersion generation it was made for
// and, for a publish asked for by annotation, the request it serves (value and number);
// backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished from spec.writer (remove tasks
// get at most 5 minutes: a missing PVC must not hold a finalizer for an hour). The result is
// the writer container's termination message (terminationMessagePolicy FallbackToLogsOnError,
// so a crash still leaves the last log lines).
// Completion: condition Complete=True (no reason in 1.28, see the fixtures) or Failed=True with
// reason BackoffLimitExceeded / DeadlineExceeded. Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "operator/api/model_version.h"
#include "operator/controller/task.h"
#include "operator/kube/store.h"

namespace modelswap::op {

// request: the activate request a publish serves, kept as an annotation ("" = none).
Json BuildJob(const ModelVersion& mv, TaskKind kind, const std::string& job_name,
              const std::string& default_image, const ActivateRequest& request = {});

// pods: the Job's pods (label job-name), any order.
TaskObservation ObserveJob(const Json& job, const std::vector<ObjectPtr>& pods);

// The termination message of the pod's writer container, newest terminated state first.
std::string TerminationMessage(const Json& pod);

}  // namespace modelswap::op
