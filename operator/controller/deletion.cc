// A deleted version's cleanup; see deletion.h.
#include "operator/controller/deletion.h"

#include <string>

#include "operator/api/well_known.h"
#include "operator/controller/conditions.h"
#include "operator/controller/delta_chain.h"
#include "operator/controller/reconcile_actions.h"

namespace modelswap::op {

using State = TaskObservation::State;

void Deletion(VersionView& v, bool is_active, int64_t now, std::vector<Action>* out) {
  const ModelVersion& mv = *v.mv;
  if (!mv.HasFinalizer(kFinalizer)) return;
  std::string waiting, why;
  for (const TaskObservation* t : v.tasks) {
    if (t->state != State::kRunning) continue;
    // A finished writer whose result is late (treated as running, see Decide) is waited for:
    // deleting its Job would lose the result and leave the file behind.
    if (t->kind == TaskKind::kWrite && t->finished_unix_ns == 0) {
      Action del = MakeAction(Action::Type::kDeleteTask, mv);
      del.task_kind = t->kind;
      del.task_name = t->name;
      out->push_back(del);
      out->push_back(MakeEvent(mv, "Normal", "TaskCancelled",
                               "write task " + t->name + " deleted: its version is being deleted"));
      waiting = "CancellingTask";
      why = "deleting write task " + t->name;
    } else if (waiting.empty()) {
      waiting = "WaitingForTask";
      why = std::string(TaskKindName(t->kind)) + " task " + t->name + " is still running";
    }
  }
  if (waiting.empty() && !v.duplicate_of.empty()) {
    // The file is its owner's: nothing to remove (even if an older operator recorded it here).
  } else if (waiting.empty() && v.next.written() && !v.next.file_removed) {
    if (is_active) {
      out->push_back(MakeEvent(mv, "Warning", "FileKept",
                               "version is still the active one in the manifest; its file is "
                               "kept: " +
                                   v.next.file));
    } else if (!v.needed_by.empty()) {
      KeepBase(v, out, &waiting, &why);
    } else if (v.remove_task == nullptr) {
      Action task = MakeTask(mv, TaskKind::kRemove);
      out->push_back(task);
      out->push_back(MakeEvent(mv, "Normal", "TaskStarted", "remove task " + task.task_name));
      waiting = "WaitingForTask";
      why = "remove task " + task.task_name + " removes " + v.next.file;
    } else if (v.remove_task->state == State::kFailed) {
      out->push_back(MakeEvent(mv, "Warning", "FileNotRemoved", v.next.message));
    }
  } else if (waiting.empty() && v.next.file_removed) {
    out->push_back(MakeEvent(mv, "Normal", "FileRemoved", "version file removed"));
  }
  if (waiting.empty()) {
    out->push_back(MakeAction(Action::Type::kRemoveFinalizer, mv));
    return;
  }
  ModelVersionStatus next = mv.status;
  SetCondition(next, mv, "Deleting", true, waiting, why, now);
  SetSummaryConditions(next, mv, {}, now);
  if (next == mv.status) return;  // already said
  Action st = MakeAction(Action::Type::kWriteStatus, mv);
  st.status = next;
  out->push_back(std::move(st));
}

}  // namespace modelswap::op
