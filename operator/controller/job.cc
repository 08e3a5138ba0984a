// Jobs for tasks; see job.h.
#include "operator/controller/job.h"

#include <algorithm>

#include "operator/api/pod_fields.h"
#include "operator/api/well_known.h"
#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

Json Labels(const ModelVersion& mv, TaskKind kind) {
  return {{"app.kubernetes.io/name", "modelswap-writer"},
          {kLabelManagedBy, kManagedBy},
          {kLabelModel, mv.model},
          {kLabelVersion, mv.version},
          {kLabelOwner, mv.name.size() <= 63 ? mv.name : mv.name.substr(0, 63)},
          {kLabelTask, std::string(TaskKindName(kind))}};
}

Json RestrictedContainerContext() {
  return {{"allowPrivilegeEscalation", false},
          {"readOnlyRootFilesystem", true},
          {"runAsNonRoot", true},
          {"capabilities", {{"drop", {"ALL"}}}}};
}

Json RestrictedPodContext() {
  return {{"runAsNonRoot", true},
          {"runAsUser", kWriterUid},
          {"runAsGroup", kWriterUid},
          {"fsGroup", kWriterUid},
          {"fsGroupChangePolicy", "OnRootMismatch"},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}};
}

// The pod spec of a task: restricted, with the settings of spec.writer or else the flags'.
Json PodSpec(const ModelVersion& mv, TaskKind kind, const WriterPodOptions& pod) {
  const WriterSpec& w = mv.writer;
  std::vector<std::string> args = TaskArgs(mv, kind, mv.root);
  Json container = {{"name", "writer"},
                    {"image", w.image.empty() ? pod.image : w.image},
                    {"terminationMessagePath", "/dev/termination-log"},
                    {"terminationMessagePolicy", "FallbackToLogsOnError"},
                    {"securityContext", RestrictedContainerContext()}};
  if (!pod.image_pull_policy.empty()) container["imagePullPolicy"] = pod.image_pull_policy;
  Json mounts = {{{"name", "models"}, {"mountPath", mv.root}}};
  Json volumes = {{{"name", "models"}, {"persistentVolumeClaim", {{"claimName", mv.claim_name}}}}};
  if (kind == TaskKind::kWrite) {
    // A chunked write builds the whole file on node-local scratch before cutting it into chunks
    // (sidecar/writer/chunked_upload.h); the root filesystem is read-only, so scratch is an
    // emptyDir, sized by the node's ephemeral storage (resources in spec.writer can request it).
    mounts.push_back({{"name", "scratch"}, {"mountPath", kWriterScratchDir}});
    volumes.push_back({{"name", "scratch"}, {"emptyDir", Json::object()}});
    args.insert(args.end(), {"--scratch-dir", kWriterScratchDir});
  }
  container["volumeMounts"] = mounts;
  if (kind == TaskKind::kWrite && pod.progress_port > 0) {
    args.insert(args.end(), {"--progress-addr", ":" + std::to_string(pod.progress_port)});
    container["ports"] = {
        {{"name", "progress"}, {"containerPort", pod.progress_port}, {"protocol", "TCP"}}};
  }
  container["args"] = args;
  if (w.resources.is_object()) container["resources"] = w.resources;
  Json spec = {{"restartPolicy", "Never"},
               {"automountServiceAccountToken", false},
               {"securityContext", RestrictedPodContext()},
               {"containers", {container}},
               {"volumes", volumes}};
  const std::string sa = w.service_account_name.value_or(pod.service_account);
  if (!sa.empty()) spec["serviceAccountName"] = sa;
  Json secrets = Json::array();
  for (const auto& name : w.image_pull_secrets.value_or(pod.image_pull_secrets))
    secrets.push_back({{"name", name}});
  if (!secrets.empty()) spec["imagePullSecrets"] = secrets;
  const auto& selector = w.node_selector ? *w.node_selector : pod.node_selector;
  if (!selector.empty()) spec["nodeSelector"] = selector;
  const Json tolerations = w.tolerations.value_or(pod.tolerations);
  if (tolerations.is_array() && !tolerations.empty()) spec["tolerations"] = tolerations;
  return spec;
}

}  // namespace

Status ParseWriterPodFlags(const std::vector<std::string>& node_selector,
                           const std::string& tolerations_json, WriterPodOptions* out) {
  if (!out->service_account.empty()) {
    MS_RETURN_IF_ERROR(ValidateObjectName(out->service_account, "--writer-service-account"));
  }
  for (const auto& name : out->image_pull_secrets)
    MS_RETURN_IF_ERROR(ValidateObjectName(name, "--writer-image-pull-secret"));
  if (!out->image_pull_policy.empty()) {
    MS_RETURN_IF_ERROR(
        ValidateImagePullPolicy(out->image_pull_policy, "--writer-image-pull-policy"));
  }
  for (const auto& entry : node_selector)
    MS_RETURN_IF_ERROR(ParseNodeSelectorEntry(entry, &out->node_selector));
  out->tolerations = Json::array();
  if (!tolerations_json.empty()) {
    Json t = Json::parse(tolerations_json, nullptr, /*allow_exceptions=*/false);
    if (t.is_discarded()) {
      return Fail(Code::kInvalidArgument,
                  "--writer-tolerations: not JSON (expected a list of "
                  "tolerations, as the chart's toJson writes)");
    }
    MS_RETURN_IF_ERROR(ValidateTolerations(t, "--writer-tolerations"));
    out->tolerations = std::move(t);
  }
  if (out->progress_port < 0 || out->progress_port > 65535) {
    return Fail(Code::kInvalidArgument, "--writer-progress-port: must be 0 (off) to 65535");
  }
  return Ok();
}

Json BuildJob(const ModelVersion& mv, TaskKind kind, const std::string& job_name,
              const WriterPodOptions& pod, const ActivateRequest& request) {
  Json labels = Labels(mv, kind);
  Json annotations = {{kAnnotationGeneration, std::to_string(mv.generation)}};
  if (!request.empty()) {
    annotations[kAnnotationActivateRequest] = request.value;
    annotations[kAnnotationActivateRequestNumber] = std::to_string(request.number);
  }
  int64_t deadline = mv.writer.active_deadline_seconds;
  if (kind == TaskKind::kRemove) deadline = std::min<int64_t>(deadline, 300);
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata",
           {{"name", job_name},
            {"namespace", mv.ns},
            {"labels", labels},
            {"annotations", annotations},
            {"ownerReferences",
             {{{"apiVersion", kModelVersions.ApiVersion()},
               {"kind", kModelVersions.kind},
               {"name", mv.name},
               {"uid", mv.uid},
               {"controller", true},
               {"blockOwnerDeletion", true}}}}}},
          {"spec",
           {{"backoffLimit", mv.writer.backoff_limit},
            {"activeDeadlineSeconds", deadline},
            {"ttlSecondsAfterFinished", mv.writer.ttl_seconds_after_finished},
            {"template", {{"metadata", {{"labels", labels}}}, {"spec", PodSpec(mv, kind, pod)}}}}}};
}

std::string TerminationMessage(const Json& pod) {
  auto statuses = pod.find("status");
  if (statuses == pod.end() || !statuses->contains("containerStatuses")) return "";
  for (const auto& cs : (*statuses)["containerStatuses"]) {
    if (Field<std::string>(cs, {"name"}) != "writer") continue;
    std::string msg = Field<std::string>(cs, {"state", "terminated", "message"});
    if (msg.empty()) msg = Field<std::string>(cs, {"lastState", "terminated", "message"});
    return msg;
  }
  return "";
}

TaskObservation ObserveJob(const Json& job, const std::vector<ObjectPtr>& pods) {
  TaskObservation t;
  t.name = NameOf(job);
  t.kind = TaskKindFromName(LabelOf(job, kLabelTask)).value_or(TaskKind::kWrite);
  t.generation = std::atoll(AnnotationOf(job, kAnnotationGeneration).c_str());
  t.request = {AnnotationOf(job, kAnnotationActivateRequest),
               std::atoll(AnnotationOf(job, kAnnotationActivateRequestNumber).c_str())};
  for (const auto& ref : Field<Json>(job, {"metadata", "ownerReferences"}, Json::array())) {
    if (Field<bool>(ref, {"controller"})) t.owner = Field<std::string>(ref, {"name"});
  }
  for (const auto& c : Field<Json>(job, {"status", "conditions"}, Json::array())) {
    if (Field<std::string>(c, {"status"}) != "True") continue;
    std::string type = Field<std::string>(c, {"type"});
    if (type == "Complete" || type == "Failed") {
      t.finished_unix_ns = ParseTime(Field<std::string>(c, {"lastTransitionTime"}));
    }
    if (type == "Complete") t.state = TaskObservation::State::kSucceeded;
    if (type == "Failed") {
      t.state = TaskObservation::State::kFailed;
      t.reason = Field<std::string>(c, {"reason"});
      t.message = Field<std::string>(c, {"message"});
    }
  }
  if (t.state == TaskObservation::State::kRunning) return t;
  // The newest finished pod holds the result (earlier ones are failed retries).
  std::vector<ObjectPtr> sorted = pods;
  std::sort(sorted.begin(), sorted.end(), [](const ObjectPtr& a, const ObjectPtr& b) {
    return Field<std::string>(*a, {"metadata", "creationTimestamp"}) <
           Field<std::string>(*b, {"metadata", "creationTimestamp"});
  });
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) {
    std::string msg = TerminationMessage(**it);
    if (!msg.empty()) {
      t.result = msg;
      break;
    }
  }
  return t;
}

}  // namespace modelswap::op
