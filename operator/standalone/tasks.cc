// Standalone task records on disk; see tasks.h.
#include "operator/standalone/tasks.h"

#include <spdlog/spdlog.h>

#include "common/subprocess.h"
#include "operator/kube/object.h"

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

constexpr size_t kMaxOutputBytes = 1 << 20;
constexpr std::string_view kRecordSuffix = ".json";

std::string_view StateName(State s) {
  switch (s) {
    case State::kRunning:
      return "Running";
    case State::kSucceeded:
      return "Succeeded";
    case State::kFailed:
      return "Failed";
  }
  return "Failed";
}

std::optional<State> StateFromName(std::string_view s) {
  if (s == "Running") return State::kRunning;
  if (s == "Succeeded") return State::kSucceeded;
  if (s == "Failed") return State::kFailed;
  return std::nullopt;
}

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r'))
    t.pop_back();
  auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

std::string RecordPath(const std::string& objects_dir, const std::string& task) {
  return JoinPath(TasksDir(objects_dir), task + std::string(kRecordSuffix));
}

// A finished task's result: its stdout, else (a failure that printed its error JSON to stderr)
// its stderr. The reconciler parses whichever it gets.
void ReadResult(Env* env, LocalTask* t) {
  t->obs.result = ReadFileToString(env, t->out_path, kMaxOutputBytes).value_or("");
  if (t->obs.state == State::kFailed && t->obs.result.empty()) {
    t->obs.result = ReadFileToString(env, t->err_path, kMaxOutputBytes).value_or("");
  }
}

Result<LocalTask> ParseRecord(const std::string& objects_dir, const std::string& stem,
                              const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return Fail(Code::kCorruption, "not a JSON object");
  LocalTask t;
  t.obs.name = Field<std::string>(j, {"name"});
  // The name becomes paths below: it must be the file's own name, which a directory listing
  // guarantees holds no '/'.
  if (t.obs.name != stem) {
    return Fail(Code::kCorruption, "name \"" + t.obs.name + "\" does not match the file name");
  }
  auto kind = TaskKindFromName(Field<std::string>(j, {"kind"}));
  auto state = StateFromName(Field<std::string>(j, {"state"}));
  if (!kind || !state) return Fail(Code::kCorruption, "unknown kind or state");
  t.obs.kind = *kind;
  t.obs.state = *state;
  t.obs.owner = Field<std::string>(j, {"owner"});
  t.obs.generation = Field<int64_t>(j, {"generation"});
  t.obs.request = {Field<std::string>(j, {"request"}), Field<int64_t>(j, {"requestNumber"})};
  t.obs.reason = Field<std::string>(j, {"reason"});
  t.obs.message = Field<std::string>(j, {"message"});
  t.obs.finished_unix_ns = Field<int64_t>(j, {"finishedUnixNs"});
  t.model = Field<std::string>(j, {"model"});
  // Any pid in the record belonged to an earlier operator's child: never ours to signal.
  t.pid = -1;
  t.out_path = JoinPath(TasksDir(objects_dir), t.obs.name + ".out");
  t.err_path = JoinPath(TasksDir(objects_dir), t.obs.name + ".err");
  t.lock_path = JoinPath(TasksDir(objects_dir), t.obs.name + ".lock");
  if (t.obs.owner.empty() || t.model.empty())
    return Fail(Code::kCorruption, "owner or model missing");
  return t;
}

}  // namespace

std::string TasksDir(const std::string& objects_dir) {
  return JoinPath(JoinPath(objects_dir, ".status"), "tasks");
}

Status SaveTaskRecord(Env* env, const std::string& objects_dir, const LocalTask& t) {
  Json j = {{"name", t.obs.name},
            {"kind", std::string(TaskKindName(t.obs.kind))},
            {"owner", t.obs.owner},
            {"generation", t.obs.generation},
            {"request", t.obs.request.value},
            {"requestNumber", t.obs.request.number},
            {"model", t.model},
            {"pid", t.pid},  // diagnostics only: liveness is the lock
            {"attempts", t.attempts},
            {"state", std::string(StateName(t.obs.state))},
            {"reason", t.obs.reason},
            {"message", t.obs.message},
            {"finishedUnixNs", t.obs.finished_unix_ns}};
  return WriteFileAtomic(env, RecordPath(objects_dir, t.obs.name), j.dump(2) + "\n");
}

void RemoveTaskFiles(Env* env, const std::string& objects_dir, const LocalTask& t) {
  for (const std::string& path :
       {RecordPath(objects_dir, t.obs.name), t.out_path, t.err_path, t.lock_path}) {
    auto st = env->Remove(path);
    if (!st && st.error().code() != Code::kNotFound) {
      spdlog::warn("standalone task={} err=\"{}\"", t.obs.name, st.error().ToString());
    }
  }
}

LocalTask NewLocalTask(const std::string& objects_dir, const std::string& name, TaskKind kind,
                       const std::string& owner, int64_t generation, const std::string& model,
                       const ActivateRequest& request) {
  LocalTask t;
  t.obs.request = request;
  t.obs.name = name;
  t.obs.kind = kind;
  t.obs.owner = owner;
  t.obs.generation = generation;
  t.model = model;
  t.out_path = JoinPath(TasksDir(objects_dir), name + ".out");
  t.err_path = JoinPath(TasksDir(objects_dir), name + ".err");
  t.lock_path = JoinPath(TasksDir(objects_dir), name + ".lock");
  return t;
}

bool FinishTask(Env* env, LocalTask* t, std::optional<int> exit_code) {
  const std::string err = ReadFileToString(env, t->err_path, kMaxOutputBytes).value_or("");
  const std::string out = ReadFileToString(env, t->out_path, kMaxOutputBytes).value_or("");
  bool ok;
  if (exit_code) {
    ok = *exit_code == 0;
    t->obs.reason = ok ? "" : "ExitCode" + std::to_string(*exit_code);
  } else {
    // A success result is on stdout; an error result on stdout or stderr (task.h).
    auto result = ParseTaskResult(out);
    if (!result) result = ParseTaskResult(err);
    if (!result) return false;  // no result at all: killed, so no outcome to keep
    ok = result->error.empty();
    t->obs.reason = ok ? "" : "ExitCodeUnknown";
  }
  t->obs.state = ok ? State::kSucceeded : State::kFailed;
  t->obs.message = ok ? "" : LastLine(err);
  t->obs.finished_unix_ns = env->NowUnixNanos();
  ReadResult(env, t);
  return true;
}

std::vector<LocalTask> LoadTaskRecords(Env* env, const std::string& objects_dir) {
  std::vector<LocalTask> tasks;
  auto names = env->ListDir(TasksDir(objects_dir));
  if (!names) return tasks;  // no tasks yet
  for (const std::string& file : *names) {
    if (file.size() <= kRecordSuffix.size() || !file.ends_with(kRecordSuffix)) continue;
    const std::string stem = file.substr(0, file.size() - kRecordSuffix.size());
    const std::string path = JoinPath(TasksDir(objects_dir), file);
    auto text = ReadFileToString(env, path, kMaxOutputBytes);
    auto t = text ? ParseRecord(objects_dir, stem, *text) : Result<LocalTask>(Fail(text.error()));
    if (!t) {
      spdlog::error("standalone: skipping task record {}: {}", path, t.error().message());
      continue;
    }
    if (t->obs.state != State::kRunning) {
      ReadResult(env, &*t);
    } else if (LifetimeLockHeld(t->lock_path)) {
      t->adopted = true;
      spdlog::info("standalone: adopted running task={}", t->obs.name);
    } else if (FinishTask(env, &*t, std::nullopt)) {
      spdlog::info("standalone: task={} ended while no operator ran; outcome from its output: {}",
                   t->obs.name, StateName(t->obs.state));
      if (auto st = SaveTaskRecord(env, objects_dir, *t); !st) {
        spdlog::warn("standalone task={} err=\"{}\"", t->obs.name, st.error().ToString());
      }
    } else {
      spdlog::info("standalone: task={} was stopped before it finished; it will run again",
                   t->obs.name);
      RemoveTaskFiles(env, objects_dir, *t);
      continue;
    }
    tasks.push_back(std::move(*t));
  }
  return tasks;
}

}  // namespace modelswap::op
