// ModelVersion reconcile decisions; see reconciler.h for the rules.
#include "operator/controller/reconciler.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>

#include "operator/api/well_known.h"
#include "operator/controller/activate_request.h"
#include "operator/controller/conditions.h"
#include "operator/controller/deletion.h"
#include "operator/controller/delta_chain.h"
#include "operator/controller/reconcile_actions.h"
#include "operator/controller/schedule.h"
#include "operator/controller/version_status.h"
#include "operator/controller/version_view.h"

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

constexpr int64_t kResultGraceNs = 60'000'000'000;

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
    VersionView v;  // member by member: an aggregate init would leave fields implicit
    v.mv = mv;
    v.next = mv->status;
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
