// Scheduling a model's next task; see schedule.h.
#include "operator/controller/schedule.h"

#include "operator/controller/reconcile_actions.h"

namespace modelswap::op {
namespace {

bool WantsRollback(const VersionView& v, bool is_active) {
  const ModelVersion& mv = *v.mv;
  if (!v.duplicate_of.empty() || mv.deleting || !mv.activate || is_active || !v.next.written() ||
      v.next.file_removed) {
    return false;
  }
  const Condition* c = mv.status.FindCondition("Active");
  bool was_off = (c != nullptr && c->reason == "ActivationNotRequested") ||
                 mv.deactivated_generation > v.next.published_generation;
  bool never_published = v.next.manifest_generation == 0;
  return (was_off || never_published) && v.next.published_generation < mv.generation &&
         v.Find(TaskKind::kPublish, mv.generation) == nullptr;
}

}  // namespace

int FindActive(const std::vector<VersionView>& views) {
  int active = -1;
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    if (!views[i].duplicate_of.empty()) continue;
    const auto& s = views[i].next;
    if (!s.written() || s.file_removed || s.manifest_generation == 0) continue;
    if (active < 0 || s.manifest_generation > views[active].next.manifest_generation) active = i;
  }
  return active;
}

std::optional<Action> Schedule(std::vector<VersionView>& views, int active, int request,
                               const ModelLoad& load, int* scheduled_write) {
  // 1. deleted versions' files: see Deletion(), which does not wait for the model's tasks.
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {  // 2. rollbacks
    if (WantsRollback(views[i], i == active)) return MakeTask(*views[i].mv, TaskKind::kPublish);
  }
  // A task for the picked request cannot exist yet: running, it would make the model busy (no
  // scheduling); finished, FoldTasks would have marked the request handled.
  if (request >= 0 && request != active) {
    const VersionView& v = views[request];
    Action a = MakeTask(*v.mv, TaskKind::kPublish);
    a.task_request = v.CurrentRequest();
    a.task_name = TaskName(v.mv->name, TaskKind::kPublish, v.mv->generation, a.task_request);
    return a;
  }
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {  // 3. the next write, in order
    auto& v = views[i];
    if (v.mv->deleting || v.next.written() || v.write_failed) continue;
    if (v.Find(TaskKind::kWrite) != nullptr) continue;  // finished but not yet folded: wait
    if (!v.base_wait_reason.empty()) continue;  // a delta before its base: later ones go first
    *scheduled_write = i;
    return MakeTask(*v.mv, TaskKind::kWrite);
  }
  if (active < 0 || !load.complete) return std::nullopt;  // 4. retention
  int kept = 0;
  for (int i = active - 1; i >= 0; --i) {
    auto& v = views[i];
    if (!v.duplicate_of.empty() || v.mv->deleting || !v.next.written() || v.next.file_removed)
      continue;
    if (++kept <= views[active].mv->retain) continue;
    auto loaded = load.loaded.find(v.mv->version);
    if (loaded != load.loaded.end() && loaded->second > 0) continue;
    if (v.remove_task != nullptr) continue;
    if (!v.needed_by.empty()) continue;  // a lower layer of a kept chain (delta_chain.h)
    return MakeTask(*v.mv, TaskKind::kRemove);
  }
  return std::nullopt;
}

}  // namespace modelswap::op
