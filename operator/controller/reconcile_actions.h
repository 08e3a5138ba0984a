// Building the reconciler's Actions (reconciler.h): one constructor per kind of action, shared
// by Decide() and the steps split out of it (schedule.cc, deletion.cc, activate_request.cc).
// Internal to the reconciler. Thread safety: pure functions.
#pragma once

#include <string>
#include <utility>

#include "operator/controller/reconciler.h"
#include "operator/controller/task.h"

namespace modelswap::op {

inline Action MakeAction(Action::Type type, const ModelVersion& mv) {
  Action a;
  a.type = type;
  a.mv = mv;
  return a;
}

inline Action MakeEvent(const ModelVersion& mv, std::string type, std::string reason,
                        std::string msg) {
  Action a = MakeAction(Action::Type::kEvent, mv);
  a.event_type = std::move(type);
  a.reason = std::move(reason);
  a.message = std::move(msg);
  return a;
}

// A task named deterministically (task.h's TaskName), so a repeated StartTask is an
// AlreadyExists, never a second Job.
inline Action MakeTask(const ModelVersion& mv, TaskKind kind) {
  Action a = MakeAction(Action::Type::kStartTask, mv);
  a.task_kind = kind;
  a.task_name = TaskName(mv.name, kind, mv.generation);
  return a;
}

}  // namespace modelswap::op
