// ModelVersion reconcile decisions; see reconciler.h for the rules.
#include "operator/controller/reconciler.h"

#include <algorithm>
#include <cstdint>
#include <deque>

#include "operator/api/well_known.h"
#include "operator/controller/conditions.h"
#include "operator/controller/delta_chain.h"
#include "operator/controller/version_view.h"
#include "operator/kube/object.h"
#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

constexpr int64_t kResultGraceNs = 60'000'000'000;

// status.progress of a version whose write task runs and reports progress; cleared otherwise. A
// change is written at most every `interval_ns` (a multi-GB write would otherwise cost a status
// write per poll); *hold_ns says how long a withheld change waits, so a requeue writes it then.
void SetProgress(VersionView& v, int64_t interval_ns, int64_t now, int64_t* hold_ns) {
  ModelVersionStatus& s = v.next;
  const TaskObservation* t = v.Find(TaskKind::kWrite);
  if (s.phase != Phase::kWriting || t == nullptr || t->state != State::kRunning || !t->progress) {
    s.progress.reset();
    return;
  }
  WriteProgress p{t->progress->written, t->progress->total, "", FormatTime(now)};
  // Never 100% before the write task has finished: the file is still synced and renamed.
  int64_t pct =
      p.bytes_total > 0 ? std::min<int64_t>(99, p.bytes_written * 100 / p.bytes_total) : 0;
  p.percent = p.bytes_total > 0 ? std::to_string(pct) + "%" : "";
  const std::optional<WriteProgress>& old = v.mv->status.progress;
  if (old && old->bytes_written == p.bytes_written && old->bytes_total == p.bytes_total) {
    s.progress = old;  // unchanged: keep the time it was last written
    return;
  }
  const int64_t since = old ? now - ParseTime(old->last_update_time) : interval_ns;
  if (old && since >= 0 && since < interval_ns) {
    s.progress = old;
    *hold_ns = std::min(*hold_ns, interval_ns - since);
    return;
  }
  s.progress = p;
}

void SetPhaseAndConditions(VersionView& v, bool is_active, bool scheduled_write,
                           const ModelLoad& load, int64_t now) {
  const ModelVersion& mv = *v.mv;
  ModelVersionStatus& s = v.next;
  s.observed_generation = mv.generation;
  if (!v.duplicate_of.empty()) {
    s.phase = Phase::kFailed;
    SetCondition(s, mv, "Written", false, "DuplicateVersion", s.message, now);
    SetCondition(s, mv, "Active", false, "DuplicateVersion", "", now);
    return;
  }
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
  } else if (s.phase == Phase::kPending && !v.base_wait_reason.empty()) {
    SetCondition(s, mv, "Written", false, v.base_wait_reason, v.base_wait_message, now);
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
    if (!views[i].duplicate_of.empty()) continue;
    const auto& s = views[i].next;
    if (!s.written() || s.file_removed || s.manifest_generation == 0) continue;
    if (active < 0 || s.manifest_generation > views[active].next.manifest_generation) active = i;
  }
  return active;
}

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

// A pending activate request that could be honoured now: the version is written, its file
// still there, and spec.activate true.
bool RequestEligible(const VersionView& v) {
  return v.duplicate_of.empty() && !v.mv->deleting && v.RequestPending() && v.mv->activate &&
         v.next.written() && !v.next.file_removed;
}

// Of the versions with eligible requests, the one to act on: the newest request when every value
// is a UTC RFC 3339 time (as `date -u +%FT%TZ` prints), else the newest-created version. Acting on
// each in turn instead would swap every pod through versions nobody wants any more.
int PickRequest(const std::vector<VersionView>& views) {
  bool all_times = true;
  for (const VersionView& v : views) {
    if (RequestEligible(v) && ParseTime(v.mv->activate_request) < 0) all_times = false;
  }
  int pick = -1;
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    if (!RequestEligible(views[i])) continue;
    if (pick < 0 || !all_times ||
        ParseTime(views[i].mv->activate_request) >= ParseTime(views[pick].mv->activate_request)) {
      pick = i;
    }
  }
  return pick;
}

// Picks the one task the model may run now, if any. `request`: PickRequest's choice (or -1).
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

// Activate requests that need no publish of their own are recorded here as handled:
//  - refused (Warning) when the version cannot be published: activate false, file retired,
//    write failed;
//  - once the picked request is acted on (`picked_acted`): the picked one itself if its version
//    is already active (`picked_publishing` false: no publish for it started, so nothing runs or
//    starts that could change that; else FoldTasks records it when its publish ends), and every
//    other eligible one as superseded by it (Normal event).
// A request whose version is not written yet stays pending: the write publishes it (if
// spec.activate); so does every request while the model is busy, to be picked once it is not.
void SettleRequest(VersionView& v, const VersionView* picked, bool picked_acted,
                   bool picked_publishing, std::vector<Action>* out) {
  const ModelVersion& mv = *v.mv;
  if (mv.deleting || !v.RequestPending()) return;
  const std::string what = std::string(kAnnotationActivateRequest) + "=" + mv.activate_request;
  std::string refused;
  if (!mv.activate) {
    refused = "spec.activate is false";
  } else if (v.next.file_removed) {
    refused = "its file was retired (spec.retain of the active version)";
  } else if (v.write_failed) {
    refused = "it was never written";
  }
  if (!refused.empty()) {
    MarkRequestHandled(v.next, mv.activate_request);
    out->push_back(
        MakeEvent(mv, "Warning", "ActivateRequestRefused", what + " not acted on: " + refused));
  } else if (!picked_acted || !RequestEligible(v)) {
    return;
  } else if (&v == picked) {
    if (!picked_publishing) MarkRequestHandled(v.next, mv.activate_request);
  } else {
    MarkRequestHandled(v.next, mv.activate_request);
    out->push_back(MakeEvent(mv, "Normal", "ActivateRequestSuperseded",
                             what + " not acted on: the newer request " +
                                 picked->mv->activate_request + " on " + picked->mv->name +
                                 " was"));
  }
}

// Exactly one object owns a (model, version): the oldest by creationTimestamp, ties by uid. The
// others are marked: without this a second object naming an existing version would run a writer
// that, with --reuse-existing, reports the first object's file as its own, publish it again, and
// on deletion remove the file the first still owns.
void MarkDuplicates(std::vector<VersionView>& views) {
  std::map<std::string, const ModelVersion*> owner;
  for (const VersionView& v : views) {
    auto [it, fresh] = owner.emplace(v.mv->version, v.mv);
    const ModelVersion* o = it->second;
    if (!fresh && (v.mv->created_ns < o->created_ns ||
                   (v.mv->created_ns == o->created_ns && v.mv->uid < o->uid))) {
      it->second = v.mv;
    }
  }
  for (VersionView& v : views) {
    const ModelVersion* o = owner[v.mv->version];
    if (o == v.mv) continue;
    v.duplicate_of = o->name;
    v.write_failed = true;
    v.next.message = "version " + v.mv->version + " of model " + v.mv->model +
                     " belongs to ModelVersion " + o->name +
                     " (created first); this object never writes, publishes or removes it";
  }
}

// A deleted version (with our finalizer): cancel its own writer, remove its file, release the
// finalizer once nothing is left to do. Never waits for other versions' tasks. While it waits,
// the condition Deleting says for what.
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
    case Action::Type::kDeleteTask:
      return "DeleteTask";
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
  // Whether a task that may publish runs: remove tasks of deleted versions do not count (they
  // never touch the manifest), so a deletion never holds up the model, nor it the deletion.
  bool busy = false;
  std::string busy_task;  // what a Pending version waits for (the Ready condition says it)
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
    for (const TaskObservation* t : v.tasks) {
      if (t->state == State::kRunning && !(mv->deleting && t->kind == TaskKind::kRemove)) {
        busy = true;
        busy_task = std::string(TaskKindName(t->kind)) + " task " + t->name;
      }
    }
    views.push_back(std::move(v));
  }
  MarkDuplicates(views);
  CheckDeltaBases(views);
  MarkChainBases(views);
  int active = FindActive(views);
  Decision d;
  int64_t progress_hold_ns = INT64_MAX;
  int scheduled_write = -1;
  std::optional<Action> task;
  const int request = busy ? -1 : PickRequest(views);
  if (!busy) task = Schedule(views, active, request, in.load, &scheduled_write);
  // The picked request is acted on when its publish starts now, or when its version is already
  // the active one and no task (which could change that) starts instead.
  const bool picked_publishing = task && !task->task_request.empty();
  const bool picked_acted = request >= 0 && (task ? picked_publishing : request == active);
  // Finalizers before anything is started: a version deleted between its Job's creation and its
  // finalizer would otherwise vanish with nothing left to cancel that Job (the fake API server
  // showed it under load; a real one relies on the owner reference's garbage collection).
  for (const VersionView& v : views) {
    if (!v.mv->deleting && !v.mv->HasFinalizer(kFinalizer)) {
      d.actions.push_back(MakeAction(Action::Type::kAddFinalizer, *v.mv));
    }
  }
  if (task) {
    // The task next: if starting it fails, no status claims it is running.
    d.actions.push_back(*task);
    d.actions.push_back(
        MakeEvent(task->mv, "Normal", "TaskStarted",
                  std::string(TaskKindName(task->task_kind)) + " task " + task->task_name));
  }
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    VersionView& v = views[i];
    if (v.mv->deleting) {
      Deletion(v, i == active, in.now_unix_ns, &d.actions);
      continue;
    }
    SettleRequest(v, request >= 0 ? &views[request] : nullptr, picked_acted, picked_publishing,
                  &d.actions);
    if (v.request_failed) {
      d.actions.push_back(MakeEvent(*v.mv, "Warning", "ActivateRequestFailed", v.next.message));
    }
    SetPhaseAndConditions(v, i == active, i == scheduled_write, in.load, in.now_unix_ns);
    RetentionFailed(v, &d.actions);
    BaseWaitEvent(v, &d.actions);
    SetAgentsReachable(v.next, *v.mv, i == active, in.load.unreachable, in.load.unreachable_example,
                       in.now_unix_ns);
    SetProgress(v, in.progress_interval_ns, in.now_unix_ns, &progress_hold_ns);
    SummaryFacts facts;
    facts.is_active = i == active;
    facts.waiting_for = busy_task;
    facts.base_wait_reason = v.base_wait_reason;
    facts.base_wait_message = v.base_wait_message;
    facts.base_stalled = v.base_stalled;
    facts.base_of = DescribeDependents(v);
    for (const TaskObservation* t : v.tasks) {
      if (t->state != State::kRunning) continue;
      facts.own_task = std::string(TaskKindName(t->kind)) + " task " + t->name;
      facts.own_task_is_publish = t->kind == TaskKind::kPublish;
    }
    if (task && task->mv.name == v.mv->name) {
      v.next.job_name = task->task_name;
      facts.own_task = std::string(TaskKindName(task->task_kind)) + " task " + task->task_name;
      facts.own_task_is_publish = task->task_kind == TaskKind::kPublish;
    }
    if (facts.own_task == facts.waiting_for) facts.waiting_for.clear();
    SetSummaryConditions(v.next, *v.mv, facts, in.now_unix_ns);
    if (v.next == v.mv->status) continue;
    Action st = MakeAction(Action::Type::kWriteStatus, *v.mv);
    st.status = v.next;
    d.actions.push_back(std::move(st));
    if (v.next.phase != v.mv->status.phase) {
      bool bad = v.next.phase == Phase::kFailed;
      // A new object has no phase yet: say so rather than print an empty name.
      std::string from = v.mv->status.phase == Phase::kNone
                             ? "(none)"
                             : std::string(PhaseName(v.mv->status.phase));
      std::string msg = "phase " + from + " -> " + std::string(PhaseName(v.next.phase));
      if (bad) msg += ": " + v.next.message;
      d.actions.push_back(
          MakeEvent(*v.mv, bad ? "Warning" : "Normal",
                    v.duplicate_of.empty() ? EventReason(v.next.phase) : "DuplicateVersion", msg));
    }
  }
  d.requeue_after = result_pending ? std::chrono::seconds(2) : std::chrono::seconds(300);
  if (progress_hold_ns != INT64_MAX) {
    auto hold = std::chrono::seconds(progress_hold_ns / 1'000'000'000 + 1);
    d.requeue_after = std::min(*d.requeue_after, hold);
  }
  return d;
}

}  // namespace modelswap::op
