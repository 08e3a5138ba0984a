// Standalone backend, the task side: writers run as child processes (started, retried, reaped,
// adopted across restarts, stopped), the agent probe, and the Backend interface (Observe,
// Execute). Reading the object and status files is in files.cc.
#include "operator/standalone/backend.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "common/subprocess.h"
#include "operator/api/well_known.h"
#include "operator/controller/agent_prober.h"
#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

// How long stopping waits for its tasks to exit after SIGTERM, all of them together.
constexpr int64_t kStopGraceNs = 5'000'000'000;

}  // namespace

StandaloneBackend::StandaloneBackend(Env* env, StandaloneOptions opts, std::string sidecar_bin,
                                     Enqueue enqueue)
    : env_(env),
      opts_(std::move(opts)),
      sidecar_bin_(std::move(sidecar_bin)),
      enqueue_(std::move(enqueue)) {
  for (LocalTask& t : LoadTaskRecords(env_, opts_.dir)) {
    const std::string name = t.obs.name;
    tasks_.emplace(name, std::move(t));
  }
  LoadSavedObjects();
}

void StandaloneBackend::SaveTaskLocked(const LocalTask& t) {
  // A record that cannot be written costs only the restart guarantee: the task itself is fine.
  if (auto st = SaveTaskRecord(env_, opts_.dir, t); !st) {
    spdlog::error("standalone task={} err=\"{}\"", t.obs.name, st.error().ToString());
  }
}

void StandaloneBackend::Reap() {
  std::vector<std::string> done;
  {
    std::lock_guard lock(mu_);
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      LocalTask& t = it->second;
      bool known = true;
      if (t.obs.state != TaskObservation::State::kRunning) {
        ++it;
        continue;
      }
      if (t.adopted) {
        // Not our child: it has ended once it no longer holds its lifetime lock.
        if (LifetimeLockHeld(t.lock_path)) {
          ++it;
          continue;
        }
        known = FinishTask(env_, &t, std::nullopt);
      } else {
        auto code = TryReap(t.pid);
        if (!code) {
          ++it;
          continue;
        }
        FinishTask(env_, &t, *code);
        if (t.obs.state == TaskObservation::State::kFailed && t.retries_left > 0 && !stopping_) {
          spdlog::warn("task failed task={} reason={} attempt={}: starting it again", it->first,
                       t.obs.reason, t.attempts);
          --t.retries_left;
          ++t.attempts;
          t.obs.state = TaskObservation::State::kRunning;
          t.obs.reason.clear();
          t.obs.message.clear();
          t.obs.finished_unix_ns = 0;
          if (SpawnLocked(t)) {
            ++it;
            continue;
          }
          t.obs.state = TaskObservation::State::kFailed;  // could not even start: keep the failure
          t.obs.reason = "SpawnFailed";
        }
      }
      done.push_back(t.model);
      if (!known) {  // an adopted task killed before it printed a result: run it again
        spdlog::info("task ended without a result task={}; it will run again", it->first);
        RemoveTaskFiles(env_, opts_.dir, t);
        it = tasks_.erase(it);
        continue;
      }
      SaveTaskLocked(t);
      spdlog::info("task finished task={} state={} reason={}", it->first,
                   t.obs.state == TaskObservation::State::kSucceeded ? "Succeeded" : "Failed",
                   t.obs.reason);
      ++it;
    }
    ExpireFailedRemovesLocked(&done);
  }
  for (const auto& m : done)
    enqueue_(m);
}

void StandaloneBackend::ExpireFailedRemovesLocked(std::vector<std::string>* models) {
  // In a cluster a failed remove Job goes after its TTL, and retention then finds the version
  // again and starts a new one (delta_chain.h, RetentionFailed); a deleted version's cleanup
  // does not wait for it (deletion.cc: FileNotRemoved, then the finalizer goes). A record kept
  // forever would never let retention retry: the file would stay until someone deleted the
  // record by hand. So a failed remove's record expires like its Job, after the owner's
  // ttlSecondsAfterFinished (the default, 600 s, when the owner is gone or unreadable). Only
  // removes: a finished write or publish is remembered in its owner's status, and the other
  // records are removed with their owner (Execute, kRemoveFinalizer; Scan).
  const int64_t now = env_->NowUnixNanos();
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    const LocalTask& t = it->second;
    if (t.obs.kind != TaskKind::kRemove || t.obs.state != TaskObservation::State::kFailed ||
        t.obs.finished_unix_ns <= 0) {
      ++it;
      continue;
    }
    int64_t ttl_s = WriterSpec{}.ttl_seconds_after_finished;
    if (auto o = objects_.find(t.obs.owner); o != objects_.end()) {
      if (auto mv = ParseModelVersion(o->second.obj)) ttl_s = mv->writer.ttl_seconds_after_finished;
    }
    if (now - t.obs.finished_unix_ns < ttl_s * 1'000'000'000) {
      ++it;
      continue;
    }
    spdlog::info("task record expired task={} (failed remove, ttlSecondsAfterFinished={})",
                 it->first, ttl_s);
    models->push_back(t.model);
    RemoveTaskFiles(env_, opts_.dir, t);
    it = tasks_.erase(it);
  }
}

void StandaloneBackend::ProbeAgent() {
  if (opts_.agent_url.empty()) return;
  auto status = FetchAgentStatus(opts_.agent_url, std::chrono::seconds(1));
  std::vector<std::string> changed;
  {
    std::lock_guard lock(mu_);
    std::map<std::string, ModelLoad> fresh;
    if (status) {
      for (const auto& [model, version] : *status) {
        ModelLoad& l = fresh[model];
        l = ModelLoad{true, 1, {}};
        if (!version.empty()) l.loaded[version] = 1;
      }
    }
    for (const auto& [name, o] : objects_) {
      std::string model = Field<std::string>(o.obj, {"spec", "model"});
      ModelLoad now = fresh.count(model) ? fresh[model] : ModelLoad{status.has_value(), 0, {}};
      if (!probed_ || !(loads_[model] == now)) changed.push_back(model);
      loads_[model] = now;
    }
    probed_ = true;
  }
  for (const auto& m : changed)
    enqueue_(m);
}

// Takes t's lifetime lock and starts t.argv holding it. kFailedPrecondition: the lock is held, by
// a run of the same task this process does not know about.
Status StandaloneBackend::SpawnLocked(LocalTask& t) {
  auto lock_fd = AcquireLifetimeLock(t.lock_path);
  if (!lock_fd) return Fail(lock_fd.error());
  // Recorded before the spawn: whatever point the operator dies at, the next one finds the
  // record, and the lock says whether the process got to run.
  SaveTaskLocked(t);
  auto pid = SpawnProcess(t.argv, t.out_path, t.err_path, *lock_fd);
  ::close(*lock_fd);  // the child holds the lock from here on (its own fd 3)
  if (!pid) {
    RemoveTaskFiles(env_, opts_.dir, t);
    return Fail(pid.error());
  }
  t.pid = *pid;
  spdlog::info("task started task={} pid={} attempt={}", t.obs.name, t.pid, t.attempts);
  SaveTaskLocked(t);
  return Ok();
}

void StandaloneBackend::KillTasks() {
  std::lock_guard lock(mu_);
  stopping_ = true;  // no retries from here on
  // Adopted tasks are left running: they are not ours to signal (their pid may even have been
  // reused), and the next operator adopts them again through their locks. Our own children get
  // SIGTERM together, then share one deadline before SIGKILL.
  std::vector<LocalTask*> own;
  for (auto& [name, t] : tasks_) {
    if (t.obs.state != TaskObservation::State::kRunning || t.adopted) continue;
    ::kill(t.pid, SIGTERM);
    own.push_back(&t);
  }
  const int64_t deadline = env_->NowMonotonicNanos() + kStopGraceNs;
  for (LocalTask* t : own) {
    std::optional<int> code;
    while (!(code = TryReap(t->pid)) && env_->NowMonotonicNanos() < deadline)
      env_->SleepForNanos(20'000'000);
    if (!code) {
      ::kill(t->pid, SIGKILL);
      int status = 0;
      ::waitpid(t->pid, &status, 0);
    }
    // Exit 0: it finished before the signal landed, keep its result. Anything else was our
    // stop, not a failure: forget it, so the next operator runs it again (writers reuse a
    // complete file and publish by rename, so a killed one leaves nothing half-done behind).
    if (code && *code == 0) {
      FinishTask(env_, t, *code);
      SaveTaskLocked(*t);
      continue;
    }
    spdlog::info("task stopped task={}", t->obs.name);
    RemoveTaskFiles(env_, opts_.dir, *t);
    t->obs.state = TaskObservation::State::kFailed;
    t->obs.reason = "Stopped";
  }
}

size_t StandaloneBackend::running_tasks() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [name, t] : tasks_)
    n += t.obs.state == TaskObservation::State::kRunning;
  return n;
}

Result<ModelInputs> StandaloneBackend::Observe(const std::string& model_key) {
  std::lock_guard lock(mu_);
  ModelInputs in;
  in.model = model_key;
  for (const auto& [name, o] : objects_) {
    if (Field<std::string>(o.obj, {"spec", "model"}) != model_key) continue;
    auto mv = ParseModelVersion(o.obj);
    if (!mv) return Fail(mv.error());
    in.versions.push_back(std::move(*mv));
  }
  for (const auto& [name, t] : tasks_) {
    if (t.model == model_key) in.tasks.push_back(t.obs);
  }
  if (!opts_.agent_url.empty()) {
    in.load = probed_ && loads_.count(model_key) ? loads_[model_key] : ModelLoad{false, 0, {}};
  } else {
    in.load = ModelLoad{true, 0, {}};  // no agent configured: nothing reports a loaded version
  }
  in.now_unix_ns = env_->NowUnixNanos();
  return in;
}

Status StandaloneBackend::Execute(const Action& a) {
  std::lock_guard lock(mu_);
  auto it = objects_.find(a.mv.name);
  if (it == objects_.end()) return Fail(Code::kNotFound, "modelversion " + a.mv.name + " is gone");
  Json& obj = it->second.obj;
  switch (a.type) {
    case Action::Type::kAddFinalizer:
      obj["metadata"]["finalizers"].push_back(kFinalizer);
      return PersistLocked(a.mv.name);
    case Action::Type::kRemoveFinalizer: {
      auto& f = obj["metadata"]["finalizers"];
      for (size_t i = f.size(); i-- > 0;) {
        if (f[i] == kFinalizer) f.erase(i);
      }
      if (IsBeingDeleted(obj) && f.empty()) {
        // Its tasks go with it, as a Job owned by a deleted object would; running ones stay
        // until Reap has collected them.
        for (auto t = tasks_.begin(); t != tasks_.end();) {
          if (t->second.obs.owner != a.mv.name ||
              t->second.obs.state == TaskObservation::State::kRunning) {
            ++t;
            continue;
          }
          RemoveTaskFiles(env_, opts_.dir, t->second);
          t = tasks_.erase(t);
        }
        objects_.erase(it);
        auto st = env_->Remove(StatusPath(a.mv.name));
        if (!st && st.error().code() != Code::kNotFound) return st;
        return Ok();
      }
      return PersistLocked(a.mv.name);
    }
    case Action::Type::kStartTask: {
      if (tasks_.count(a.task_name) != 0) {
        return Fail(Code::kAlreadyExists, "task " + a.task_name + " exists already");
      }
      std::vector<std::string> argv{sidecar_bin_};
      auto args = TaskArgs(a.mv, a.task_kind, opts_.root);
      argv.insert(argv.end(), args.begin(), args.end());
      MS_RETURN_IF_ERROR(env_->CreateDirs(TasksDir(opts_.dir)));
      LocalTask t = NewLocalTask(opts_.dir, a.task_name, a.task_kind, a.mv.name, a.mv.generation,
                                 a.mv.model, a.task_request);
      t.argv = std::move(argv);
      t.retries_left = a.mv.writer.backoff_limit;
      auto started = SpawnLocked(t);
      if (!started && started.error().code() == Code::kFailedPrecondition) {
        // Still running from an operator that died before it could record it: adopt it.
        spdlog::info("standalone: adopted running task={} (no record)", a.task_name);
        t.adopted = true;
        SaveTaskLocked(t);
        tasks_[a.task_name] = std::move(t);
        return Ok();
      }
      if (!started) return started;
      tasks_[a.task_name] = std::move(t);
      return Ok();
    }
    case Action::Type::kDeleteTask: {
      // As a Job deleted with its pods: SIGTERM, no retry; Reap records it as failed and the
      // deleted version then goes. An adopted task is not ours to signal: it is waited for.
      auto t = tasks_.find(a.task_name);
      if (t == tasks_.end() || t->second.obs.state != TaskObservation::State::kRunning) return Ok();
      t->second.retries_left = 0;
      if (t->second.pid > 0) ::kill(t->second.pid, SIGTERM);
      return Ok();
    }
    case Action::Type::kWriteStatus:
      obj["status"] = StatusToJson(a.status);
      obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
      return PersistLocked(a.mv.name);
    case Action::Type::kEvent: {
      Json ev = {{"time", FormatMicroTime(env_->NowUnixNanos())},
                 {"object", a.mv.name},
                 {"type", a.event_type},
                 {"reason", a.reason},
                 {"message", a.message}};
      std::ofstream(JoinPath(JoinPath(opts_.dir, ".status"), "events.log"), std::ios::app)
          << ev.dump() << "\n";
      spdlog::info("event mv={} type={} reason={} msg=\"{}\"", a.mv.name, a.event_type, a.reason,
                   a.message);
      return Ok();
    }
  }
  return Fail(Code::kInternal, "unknown action");
}

}  // namespace modelswap::op
