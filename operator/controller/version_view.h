// What the reconciler knows of one ModelVersion while it decides: the object, its tasks, and
// the status being computed (`next`), with the tasks' results folded in. Internal to the
// reconciler (reconciler.cc, schedule.cc, activate_request.cc, deletion.cc, version_status.cc).
// Thread safety: plain values.
#pragma once

#include <string>
#include <vector>

#include "operator/api/model_version.h"
#include "operator/controller/task.h"

namespace modelswap::op {

struct VersionView {
  const ModelVersion* mv;
  std::vector<const TaskObservation*> tasks;
  ModelVersionStatus next;
  bool write_failed = false;
  bool write_running = false;
  bool any_running = false;
  bool request_failed = false;  // the publish for the current activate request failed
  // Another object owns this (model, version) (the oldest: see MarkDuplicates in reconciler.cc):
  // its name. This one is Failed (DuplicateVersion) and never touches files or the manifest.
  std::string duplicate_of;
  const TaskObservation* remove_task = nullptr;
  // A delta not yet written whose base is not written (CheckDeltaBases, delta_chain.h): why,
  // for the Written and Ready conditions; its writer waits. "" = not waiting.
  std::string base_wait_reason, base_wait_message;
  bool base_stalled = false;  // waits for a change elsewhere (base missing, failed, a cycle)
  // Versions whose chains read through this version's file (MarkChainBases, delta_chain.h):
  // retention keeps it, and its deletion keeps the file (or waits for deleting dependents).
  struct Dependent {
    std::string version;
    bool deleting = false;
  };
  std::vector<Dependent> needed_by;

  const TaskObservation* Find(TaskKind k, int64_t generation = -1) const {
    for (auto* t : tasks) {
      if (t->kind == k && (generation < 0 || t->generation == generation)) return t;
    }
    return nullptr;
  }
  // The activate request as a task would serve it: the annotation's value, numbered by how many
  // requests the version has handled, so a value asked again later is a new request.
  ActivateRequest CurrentRequest() const {
    return {mv->activate_request, next.activate_requests_handled};
  }
  // An activate-requested-at value not yet acted on (or refused).
  bool RequestPending() const {
    return !mv->activate_request.empty() &&
           mv->activate_request != next.last_handled_activate_request;
  }
};

// Records `value` as the last activate request handled (acted on or refused).
inline void MarkRequestHandled(ModelVersionStatus& s, const std::string& value) {
  s.last_handled_activate_request = value;
  ++s.activate_requests_handled;
}

// Folds finished tasks into v.next: results are facts that must survive the task's deletion.
void FoldTasks(VersionView& v);

}  // namespace modelswap::op
