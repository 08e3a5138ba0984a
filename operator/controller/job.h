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
//
// The pod passes Pod Security "restricted" (kubernetes.io/docs/concepts/security/
// pod-security-standards), so writers run in namespaces that enforce it:
//  - pod: runAsNonRoot, runAsUser/runAsGroup 65532 (Dockerfile.sidecar's USER, the agent's too),
//    seccompProfile RuntimeDefault, fsGroup 65532 with fsGroupChangePolicy OnRootMismatch (a
//    volume whose driver applies fsGroup, e.g. an Azure Disk, becomes writable to the writer;
//    OnRootMismatch so a volume of many files is not chowned again at every pod start; blobfuse
//    takes ownership from its mount options and ignores it), automountServiceAccountToken false
//    (the writer calls no API: a stolen token would be a stolen identity for nothing);
//  - container: allowPrivilegeEscalation false, capabilities drop ALL, readOnlyRootFilesystem.
//    The writer writes nowhere but the volume (its scratch file is a .tmp- file beside the
//    version, writer.h) and the termination log (a file the kubelet mounts), so it needs no
//    /tmp emptyDir.
// serviceAccountName, imagePullSecrets, nodeSelector and tolerations come from spec.writer when
// set there, else from the operator's flags (WriterPodOptions); imagePullPolicy from the flags.
// A write task's pod serves its progress on `progress_port` (writer_progress.h; 0 = off).
// Completion: condition Complete=True (no reason in 1.28, see the fixtures) or Failed=True with
// reason BackoffLimitExceeded / DeadlineExceeded. Thread safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "operator/api/model_version.h"
#include "operator/controller/task.h"
#include "operator/kube/store.h"

namespace modelswap::op {

// The writer pod settings the operator's flags give (main.cc: --sidecar-image,
// --writer-image-pull-policy, --writer-service-account, --writer-image-pull-secret,
// --writer-node-selector, --writer-tolerations, --writer-progress-port).
struct WriterPodOptions {
  std::string image = "ghcr.io/modelswap/modelswap-sidecar:0.1.0";
  std::string image_pull_policy;  // "" = the cluster's default for the tag
  std::string service_account;    // "" = the namespace's default
  std::vector<std::string> image_pull_secrets;
  std::map<std::string, std::string> node_selector;
  Json tolerations = Json::array();
  int progress_port = 8472;  // 0 = writers serve no progress
};

// The flags as given on the command line, validated into `out` (pod_fields.h rules); errors
// name the flag. `tolerations_json`: "" or a JSON array.
Status ParseWriterPodFlags(const std::vector<std::string>& node_selector,
                           const std::string& tolerations_json, WriterPodOptions* out);

inline constexpr int kWriterUid = 65532;  // Dockerfile.sidecar: USER 65532:65532
// Where write pods mount their scratch emptyDir (--scratch-dir): chunked writes build there.
inline constexpr char kWriterScratchDir[] = "/scratch";

// request: the activate request a publish serves, kept as an annotation ("" = none).
Json BuildJob(const ModelVersion& mv, TaskKind kind, const std::string& job_name,
              const WriterPodOptions& pod, const ActivateRequest& request = {});

// pods: the Job's pods (label job-name), any order.
TaskObservation ObserveJob(const Json& job, const std::vector<ObjectPtr>& pods);

// The termination message of the pod's writer container, newest terminated state first.
std::string TerminationMessage(const Json& pod);

}  // namespace modelswap::op
