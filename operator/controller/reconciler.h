// The ModelVersion reconciler's decisions, as a pure function over values.
//
// The unit of work is a model (namespace + spec.model), not one ModelVersion: versions of a
// model roll one at a time in creation order, so only a view of all of them can decide what
// runs next. Decide() takes what is observed (the model's ModelVersions, its tasks, what the
// agents report loaded) and returns actions; a Backend (backend.h) gathers the inputs and
// executes the actions against Kubernetes or, in standalone mode, local files and processes.
// Being level-based, Decide() may be called any number of times on the same inputs: task names
// are deterministic, so a repeated StartTask is an AlreadyExists, never a second Job.
//
// Rules (docs/design.md, "The operator"):
//  - phases: Pending (waiting its turn) -> Writing (write task running) -> Ready (written, not
//    published) | Active (the written version with the highest manifest generation) ->
//    Superseded (published before, no longer active, or its file retired); Failed when the
//    write task failed (terminal: source is immutable, so recreate the ModelVersion to retry).
//  - one task per model at a time; priority: file removal for deleted versions, rollback
//    publishes, the next write, retention removals.
//  - rollback: spec.activate true on a written, non-active version that was never published
//    or whose activate was seen false (Active condition reason ActivationNotRequested) runs a
//    publish-only task. So does a new value of the annotation modelswap.io/activate-requested-at
//    (status.lastHandledActivateRequest holds the last one handled, so a restarted or relisting
//    operator acts on each value once, which a quick false -> true flip cannot guarantee).
//    Requests wait while the model is busy; of several waiting, only the newest is acted on
//    (the others are recorded as superseded); one on the active version is simply recorded; one
//    that cannot be honoured (activate false, file retired, write failed) is recorded with a
//    Warning Event.
//  - retention: of the written versions older than the active one, the newest spec.retain
//    (of the active version) keep their files; older ones are removed, never while an agent
//    reports one loaded and never while load information is incomplete.
//  - finalizer: added to every version; on deletion the version's file is removed (unless the
//    manifest still points at it: then it is kept with a Warning), and the finalizer is
//    released even if removal fails (an Event says why), so deletion never blocks forever.
//    A deleted version never waits for other versions' tasks: its remove task runs beside them
//    (it does not touch the manifest, and `remove` refuses the version the manifest names). Its
//    own writer is deleted with its Job (a writer stuck Pending would otherwise hold the
//    deletion for activeDeadlineSeconds; a killed writer leaves only a .tmp- file). What the
//    deletion still waits for is the condition Deleting (reason and message name the task).
//  - conditions Written/Active/Loaded carry observedGeneration; Ready sums them up, with
//    Reconciling/Stalled for kstatus (conditions.h), on every status write; every phase change
//    emits an Event; status is only written when it changed.
//  - progress: while a write task runs, status.progress holds the bytes its pod reports
//    (writer_progress.h), changed at most every progress_interval_ns (a requeue writes a
//    withheld change when the interval has passed).
//
// Thread safety: pure functions.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "operator/api/model_version.h"
#include "operator/controller/task.h"

namespace modelswap::op {

// What the agents of the model's pods report.
struct ModelLoad {
  bool complete = false;              // every injected pod answered (retention needs this)
  int total = 0;                      // injected pods serving the model
  std::map<std::string, int> loaded;  // version -> pods whose active version it is
  // Running pods whose agent did not answer its latest probe (AgentProber::ReachFor), and
  // "ns/pod: error" of one of them: the AgentsReachable condition (conditions.h). Both have
  // default initializers so `ModelLoad{true, 0, {}}` stays warning-free under -Wextra.
  int unreachable = 0;
  std::string unreachable_example = {};
  // Of total, pods whose modelswap.io/node-cache annotation says "disabled:" (per-pod staging
  // instead of the node cache; AgentProber::PerPodStagingFor): status.pods.perPodStaging.
  int per_pod_staging = 0;
  bool operator==(const ModelLoad&) const = default;
};

struct ModelInputs {
  std::string ns, model;
  std::vector<ModelVersion> versions;
  std::vector<TaskObservation> tasks;
  ModelLoad load;
  int64_t now_unix_ns = 0;
  int64_t progress_interval_ns = 5'000'000'000;  // least time between status.progress changes
};

struct Action {
  enum class Type {
    kAddFinalizer,
    kRemoveFinalizer,
    kStartTask,
    kDeleteTask,  // task_name: stop and delete a running task (a Job: background propagation)
    kWriteStatus,
    kEvent
  };
  Type type = Type::kEvent;
  ModelVersion mv;  // the version acted on (metadata as observed: RV preconditions)
  // kStartTask, kDeleteTask
  TaskKind task_kind = TaskKind::kWrite;
  std::string task_name;
  ActivateRequest task_request;  // publish for an activate request: which (kept on the task)
  // kWriteStatus
  ModelVersionStatus status;
  // kEvent
  std::string event_type;  // Normal | Warning
  std::string reason;
  std::string message;
};
std::string_view ActionTypeName(Action::Type t);

struct Decision {
  std::vector<Action> actions;
  // Re-check after this long even without events (periodic resync; no API cost: reads hit the
  // cache and unchanged status is not written).
  std::optional<std::chrono::seconds> requeue_after;
};

Decision Decide(const ModelInputs& in);

}  // namespace modelswap::op
