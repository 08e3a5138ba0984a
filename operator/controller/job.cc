// Jobs for tasks; see job.h.
#include "operator/controller/job.h"

#include <algorithm>

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

}  // namespace

Json BuildJob(const ModelVersion& mv, TaskKind kind, const std::string& job_name,
              const std::string& default_image, const ActivateRequest& request) {
  Json labels = Labels(mv, kind);
  Json annotations = {{kAnnotationGeneration, std::to_string(mv.generation)}};
  if (!request.empty()) {
    annotations[kAnnotationActivateRequest] = request.value;
    annotations[kAnnotationActivateRequestNumber] = std::to_string(request.number);
  }
  Json container = {{"name", "writer"},
                    {"image", mv.writer.image.empty() ? default_image : mv.writer.image},
                    {"args", TaskArgs(mv, kind, mv.root)},
                    {"terminationMessagePath", "/dev/termination-log"},
                    {"terminationMessagePolicy", "FallbackToLogsOnError"},
                    {"volumeMounts", {{{"name", "models"}, {"mountPath", mv.root}}}},
                    {"securityContext",
                     {{"allowPrivilegeEscalation", false}, {"capabilities", {{"drop", {"ALL"}}}}}}};
  if (mv.writer.resources.is_object()) container["resources"] = mv.writer.resources;
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
            {"template",
             {{"metadata", {{"labels", labels}}},
              {"spec",
               {{"restartPolicy", "Never"},
                {"containers", {container}},
                {"volumes",
                 {{{"name", "models"},
                   {"persistentVolumeClaim", {{"claimName", mv.claim_name}}}}}}}}}}}}};
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
