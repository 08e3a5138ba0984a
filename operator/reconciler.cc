// ModelVersion reconcile decisions; see reconciler.h for the rules.
#include "operator/reconciler.h"

#include <algorithm>
#include <deque>

#include "operator/kube_object.h"
#include "operator/resource.h"

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

constexpr int64_t kResultGraceNs = 60'000'000'000;

struct VersionView {
  const ModelVersion* mv;
  std::vector<const TaskObservation*> tasks;
  ModelVersionStatus next;
  bool write_failed = false;
  bool write_running = false;
  bool any_running = false;
  const TaskObservation* remove_task = nullptr;

  const TaskObservation* Find(TaskKind k, int64_t generation = -1) const {
    for (auto* t : tasks) {
      if (t->kind == k && (generation < 0 || t->generation == generation)) return t;
    }
    return nullptr;
  }
  const TaskObservation* FindRequest(const std::string& request) const {
    for (auto* t : tasks) {
      if (t->kind == TaskKind::kPublish && t->request == request) return t;
    }
    return nullptr;
  }
  // An activate-requested-at value not yet acted on (or refused).
  bool RequestPending() const {
    return !mv->activate_request.empty() &&
           mv->activate_request != next.last_handled_activate_request;
  }
};

std::string FailureMessage(const TaskObservation& t) {
  std::string msg = t.reason.empty() ? "task failed" : t.reason;
  if (!t.message.empty()) msg += ": " + t.message;
  if (auto r = ParseTaskResult(t.result); r && !r->error.empty()) {
    msg += " (" + (r->code.empty() ? "" : r->code + ": ") + r->error + ")";
  }
  return msg;
}

// Folds finished tasks into the status: results are facts that must survive the task's deletion.
void FoldTasks(VersionView& v) {
  ModelVersionStatus& s = v.next;
  for (const TaskObservation* t : v.tasks) {
    if (t->state == State::kRunning) {
      v.any_running = true;
      if (t->kind == TaskKind::kWrite) v.write_running = true;
      s.job_name = t->name;
      continue;
    }
    auto result = ParseTaskResult(t->result);
    switch (t->kind) {
      case TaskKind::kWrite:
        s.job_name = t->name;
        if (t->state == State::kFailed) {
          if (!s.written()) {
            v.write_failed = true;
            s.message = FailureMessage(*t);
          }
        } else if (!s.written()) {
          s.file = result && !result->path.empty()
                       ? result->path
                       : v.mv->root + "/" + v.mv->model + "/versions/" + v.mv->version + ".msf";
          s.bytes = result ? result->bytes : 0;
          s.checksum = result ? result->checksum : "";
          s.message = result ? "" : "writer succeeded but its result was not readable";
          if (result && result->manifest_generation > 0) {
            s.manifest_generation = result->manifest_generation;
            s.published_generation = t->generation;
          }
        }
        break;
      case TaskKind::kPublish: {
        // A publish for an activate request is folded once, while its request is the current,
        // unhandled one; a task for an older request (its Job lingers until its TTL) only
        // contributes its manifest generation, which max() keeps idempotent. A publish for a
        // spec change is folded once its generation is newer than the last published one.
        const bool for_request = !t->request.empty();
        const bool current = for_request
                                 ? v.RequestPending() && t->request == v.mv->activate_request
                                 : t->generation > s.published_generation;
        if (t->state == State::kSucceeded && result && result->manifest_generation > 0) {
          s.manifest_generation = std::max(s.manifest_generation, result->manifest_generation);
          if (!current) break;
          s.published_generation = std::max(s.published_generation, t->generation);
          s.job_name = t->name;
          s.message.clear();
        } else if (t->state == State::kFailed && current) {
          s.message = "publish failed: " + FailureMessage(*t);
        } else {
          break;
        }
        // Handled either way: a failed request is not retried by itself (the Job already had
        // its retries); a new annotation value asks again.
        if (for_request) s.last_handled_activate_request = t->request;
        break;
      }
      case TaskKind::kRemove:
        v.remove_task = t;
        if (t->state == State::kSucceeded) {
          s.file_removed = true;
        } else {
          s.message = "remove failed: " + FailureMessage(*t);
        }
        break;
    }
  }
  if (!s.written() && !v.write_running && v.mv->status.phase == Phase::kFailed) {
    v.write_failed = true;  // the failed Job is gone (TTL); the status remembers
  }
}

void SetCondition(ModelVersionStatus& s, const ModelVersion& mv, const std::string& type,
                  bool value, const std::string& reason, const std::string& message, int64_t now) {
  std::string status = value ? "True" : "False";
  std::string since = FormatTime(now);
  if (const Condition* old = mv.status.FindCondition(type); old && old->status == status) {
    since = old->last_transition_time;
  }
  Condition c{type, status, reason, message, mv.generation, since};
  for (auto& existing : s.conditions) {
    if (existing.type == type) {
      existing = c;
      return;
    }
  }
  s.conditions.push_back(c);
}

void SetPhaseAndConditions(VersionView& v, bool is_active, bool scheduled_write,
                           const ModelLoad& load, int64_t now) {
  const ModelVersion& mv = *v.mv;
  ModelVersionStatus& s = v.next;
  s.observed_generation = mv.generation;
  if (s.written()) {
    s.phase = s.file_removed              ? Phase::kSuperseded
              : is_active                 ? Phase::kActive
              : s.manifest_generation > 0 ? Phase::kSuperseded
                                          : Phase::kReady;
  } else if (v.write_failed) {
    s.phase = Phase::kFailed;
  } else if (v.write_running || scheduled_write || mv.status.phase == Phase::kWriting) {
    s.phase = Phase::kWriting;
  } else {
    s.phase = Phase::kPending;
  }
  if (s.written()) {
    SetCondition(s, mv, "Written", !s.file_removed, s.file_removed ? "FileRemoved" : "Written",
                 s.file_removed ? "version file retired" : "version file written", now);
  } else {
    std::string reason = std::string(PhaseName(s.phase));
    SetCondition(s, mv, "Written", false, reason == "Failed" ? "WriteFailed" : reason,
                 s.phase == Phase::kFailed ? s.message : "", now);
  }
  if (is_active) {
    SetCondition(s, mv, "Active", true, "Published", "the manifest points at this version", now);
  } else if (!mv.activate) {
    SetCondition(s, mv, "Active", false, "ActivationNotRequested", "spec.activate is false", now);
  } else {
    SetCondition(s, mv, "Active", false, s.manifest_generation > 0 ? "Superseded" : "NotPublished",
                 "", now);
  }
  if (load.complete || load.total > 0) {
    auto it = load.loaded.find(mv.version);
    s.pods_loaded = it == load.loaded.end() ? 0 : it->second;
    s.pods_total = load.total;
  }
  bool loaded = s.pods_total > 0 && s.pods_loaded == s.pods_total;
  SetCondition(s, mv, "Loaded", loaded,
               s.pods_total == 0 ? "NoPods"
               : loaded          ? "AllPodsLoaded"
                                 : "Loading",
               std::to_string(s.pods_loaded) + "/" + std::to_string(s.pods_total) +
                   " pods report this version active",
               now);
}

Action MakeAction(Action::Type type, const ModelVersion& mv) {
  Action a;
  a.type = type;
  a.mv = mv;
  return a;
}

Action MakeEvent(const ModelVersion& mv, std::string type, std::string reason, std::string msg) {
  Action a = MakeAction(Action::Type::kEvent, mv);
  a.event_type = std::move(type);
  a.reason = std::move(reason);
  a.message = std::move(msg);
  return a;
}

Action MakeTask(const ModelVersion& mv, TaskKind kind) {
  Action a = MakeAction(Action::Type::kStartTask, mv);
  a.task_kind = kind;
  a.task_name = TaskName(mv.name, kind, mv.generation);
  return a;
}

// Index of the active version: the written, present version with the highest manifest
// generation (rollbacks republish under a new, higher generation).
int FindActive(const std::vector<VersionView>& views) {
  int active = -1;
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    const auto& s = views[i].next;
    if (!s.written() || s.file_removed || s.manifest_generation == 0) continue;
    if (active < 0 || s.manifest_generation > views[active].next.manifest_generation) active = i;
  }
  return active;
}

bool WantsRollback(const VersionView& v, bool is_active) {
  const ModelVersion& mv = *v.mv;
  if (mv.deleting || !mv.activate || is_active || !v.next.written() || v.next.file_removed) {
    return false;
  }
  if (v.RequestPending()) return v.FindRequest(mv.activate_request) == nullptr;
  const Condition* c = mv.status.FindCondition("Active");
  bool was_off = (c != nullptr && c->reason == "ActivationNotRequested") ||
                 mv.deactivated_generation > v.next.published_generation;
  bool never_published = v.next.manifest_generation == 0;
  return (was_off || never_published) && v.next.published_generation < mv.generation &&
         v.Find(TaskKind::kPublish, mv.generation) == nullptr;
}

// Picks the one task the model may run now, if any.
std::optional<Action> Schedule(std::vector<VersionView>& views, int active, const ModelLoad& load,
                               int* scheduled_write) {
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {  // 1. deleted versions' files
    const VersionView& v = views[i];
    const ModelVersion& mv = *v.mv;
    if (mv.deleting && mv.HasFinalizer(kFinalizer) && v.next.written() && !v.next.file_removed &&
        i != active && v.remove_task == nullptr) {
      return MakeTask(mv, TaskKind::kRemove);
    }
  }
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {  // 2. rollbacks
    if (!WantsRollback(views[i], i == active)) continue;
    const ModelVersion& mv = *views[i].mv;
    Action a = MakeTask(mv, TaskKind::kPublish);
    if (views[i].RequestPending()) {
      a.task_request = mv.activate_request;
      a.task_name = TaskName(mv.name, TaskKind::kPublish, mv.generation, mv.activate_request);
    }
    return a;
  }
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {  // 3. the next write, in order
    auto& v = views[i];
    if (v.mv->deleting || v.next.written() || v.write_failed) continue;
    if (v.Find(TaskKind::kWrite) != nullptr) continue;  // finished but not yet folded: wait
    *scheduled_write = i;
    return MakeTask(*v.mv, TaskKind::kWrite);
  }
  if (active < 0 || !load.complete) return std::nullopt;  // 4. retention
  int kept = 0;
  for (int i = active - 1; i >= 0; --i) {
    auto& v = views[i];
    if (v.mv->deleting || !v.next.written() || v.next.file_removed) continue;
    if (++kept <= views[active].mv->retain) continue;
    auto loaded = load.loaded.find(v.mv->version);
    if (loaded != load.loaded.end() && loaded->second > 0) continue;
    if (v.remove_task != nullptr) continue;
    return MakeTask(*v.mv, TaskKind::kRemove);
  }
  return std::nullopt;
}

// An activate request that needs no publish is handled here: the version is already the active
// one, or it cannot be published (refused with a Warning naming why). A version not written yet
// keeps its request pending: it is published when written (if spec.activate), then active.
void SettleRequest(VersionView& v, bool is_active, std::vector<Action>* out) {
  const ModelVersion& mv = *v.mv;
  if (mv.deleting || !v.RequestPending()) return;
  std::string refused;
  if (is_active) {
  } else if (!mv.activate) {
    refused = "spec.activate is false";
  } else if (v.next.file_removed) {
    refused = "its file was retired (spec.retain of the active version)";
  } else if (v.write_failed) {
    refused = "it was never written";
  } else {
    return;  // a publish (or the write) will handle it
  }
  v.next.last_handled_activate_request = mv.activate_request;
  if (!refused.empty()) {
    out->push_back(MakeEvent(mv, "Warning", "ActivateRequestRefused",
                             std::string(kAnnotationActivateRequest) + "=" + mv.activate_request +
                                 " not acted on: " + refused));
  }
}

// Finalizers: add to live versions; release deleted ones once nothing is left to do.
void Finalize(const VersionView& v, bool is_active, bool busy, std::vector<Action>* out) {
  const ModelVersion& mv = *v.mv;
  if (!mv.deleting) {
    if (!mv.HasFinalizer(kFinalizer)) out->push_back(MakeAction(Action::Type::kAddFinalizer, mv));
    return;
  }
  if (!mv.HasFinalizer(kFinalizer) || v.any_running) return;
  if (v.next.written() && !v.next.file_removed) {
    if (is_active && !busy) {
      out->push_back(MakeEvent(mv, "Warning", "FileKept",
                               "version is still the active one in the manifest; its file is "
                               "kept: " +
                                   v.next.file));
    } else if (v.remove_task != nullptr && v.remove_task->state == State::kFailed) {
      out->push_back(MakeEvent(mv, "Warning", "FileNotRemoved", v.next.message));
    } else {
      return;  // removal pending
    }
  } else if (v.next.file_removed) {
    out->push_back(MakeEvent(mv, "Normal", "FileRemoved", "version file removed"));
  }
  out->push_back(MakeAction(Action::Type::kRemoveFinalizer, mv));
}

std::string EventReason(Phase p) {
  switch (p) {
    case Phase::kWriting:
      return "WriterStarted";
    case Phase::kReady:
      return "Written";
    case Phase::kActive:
      return "Activated";
    case Phase::kSuperseded:
      return "Superseded";
    case Phase::kFailed:
      return "WriteFailed";
    default:
      return std::string(PhaseName(p));
  }
}

}  // namespace

std::string_view ActionTypeName(Action::Type t) {
  switch (t) {
    case Action::Type::kAddFinalizer:
      return "AddFinalizer";
    case Action::Type::kRemoveFinalizer:
      return "RemoveFinalizer";
    case Action::Type::kStartTask:
      return "StartTask";
    case Action::Type::kWriteStatus:
      return "WriteStatus";
    case Action::Type::kEvent:
      return "Event";
  }
  return "";
}

Decision Decide(const ModelInputs& in) {
  std::vector<const ModelVersion*> sorted;
  for (const auto& mv : in.versions)
    sorted.push_back(&mv);
  std::sort(sorted.begin(), sorted.end(), [](const ModelVersion* a, const ModelVersion* b) {
    return a->created_ns != b->created_ns ? a->created_ns < b->created_ns : a->name < b->name;
  });
  std::vector<VersionView> views;
  std::deque<TaskObservation> pending_tasks;  // stable addresses for the views
  bool busy = false;
  bool result_pending = false;
  for (const ModelVersion* mv : sorted) {
    VersionView v{mv, {}, mv->status};
    for (const auto& t : in.tasks) {
      if (t.owner != mv->name) continue;
      // A Job's completion and its pod's termination message arrive on different watches: a
      // finished task without its result is treated as running for a grace period, so the
      // result is not recorded as unknown just because the pod event is late.
      if (t.state != State::kRunning && t.result.empty() && t.finished_unix_ns > 0 &&
          in.now_unix_ns - t.finished_unix_ns < kResultGraceNs) {
        TaskObservation* pending = &pending_tasks.emplace_back(t);
        pending->state = State::kRunning;
        v.tasks.push_back(pending);
        result_pending = true;
        continue;
      }
      v.tasks.push_back(&t);
    }
    FoldTasks(v);
    busy = busy || v.any_running;
    views.push_back(std::move(v));
  }
  int active = FindActive(views);
  Decision d;
  int scheduled_write = -1;
  std::optional<Action> task;
  if (!busy) task = Schedule(views, active, in.load, &scheduled_write);
  if (task) {
    // The task first: if starting it fails, no status claims it is running.
    d.actions.push_back(*task);
    d.actions.push_back(
        MakeEvent(task->mv, "Normal", "TaskStarted",
                  std::string(TaskKindName(task->task_kind)) + " task " + task->task_name));
  }
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    VersionView& v = views[i];
    Finalize(v, i == active, busy || task.has_value(), &d.actions);
    if (v.mv->deleting) continue;  // its status no longer matters; it is going away
    SettleRequest(v, i == active, &d.actions);
    SetPhaseAndConditions(v, i == active, i == scheduled_write, in.load, in.now_unix_ns);
    if (task && task->mv.name == v.mv->name) v.next.job_name = task->task_name;
    if (v.next == v.mv->status) continue;
    Action st = MakeAction(Action::Type::kWriteStatus, *v.mv);
    st.status = v.next;
    d.actions.push_back(std::move(st));
    if (v.next.phase != v.mv->status.phase) {
      bool bad = v.next.phase == Phase::kFailed;
      std::string msg = std::string("phase ") + std::string(PhaseName(v.mv->status.phase)) +
                        " -> " + std::string(PhaseName(v.next.phase));
      if (bad) msg += ": " + v.next.message;
      d.actions.push_back(
          MakeEvent(*v.mv, bad ? "Warning" : "Normal", EventReason(v.next.phase), msg));
    }
  }
  d.requeue_after = result_pending ? std::chrono::seconds(2) : std::chrono::seconds(300);
  return d;
}

}  // namespace modelswap::op
