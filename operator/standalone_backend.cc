// Standalone backend: files in, child processes and status files out; see standalone_backend.h.
#include "operator/standalone_backend.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <fstream>
#include <regex>

#include "operator/agent_prober.h"
#include "operator/resource.h"
#include "operator/subprocess.h"
#include "operator/yaml_json.h"

namespace modelswap::op {
namespace {

bool IsObjectFile(const std::string& name) {
  auto ends = [&](const char* s) {
    std::string_view suf(s);
    return name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return name[0] != '.' && (ends(".yaml") || ends(".yml") || ends(".json"));
}

// metadata.name becomes a file name under .status: DNS-1123 subdomain only, so no '/' or "..".
Status ValidateObjectName(const std::string& name) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  if (name.empty() || name.size() > 253 || !std::regex_match(name, re)) {
    return Fail(Code::kInvalidArgument,
                "metadata.name \"" + name + "\" is not a DNS-1123 subdomain");
  }
  return Ok();
}

// How long an object's file must stay absent (or without the object) before the object counts
// as deleted: two polling rounds.
constexpr int64_t kDeleteAfterMissingNs = 2'000'000'000;

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
}

void StandaloneBackend::SaveTaskLocked(const LocalTask& t) {
  // A record that cannot be written costs only the restart guarantee: the task itself is fine.
  if (auto st = SaveTaskRecord(env_, opts_.dir, t); !st) {
    spdlog::error("standalone task={} err=\"{}\"", t.obs.name, st.error().ToString());
  }
}

std::string StandaloneBackend::StatusPath(const std::string& name) const {
  return JoinPath(JoinPath(opts_.dir, ".status"), name + ".json");
}

void StandaloneBackend::WriteError(const std::string& file, const std::string& message) {
  spdlog::error("standalone file={} err=\"{}\"", file, message);
  auto st = WriteFileAtomic(env_, JoinPath(JoinPath(opts_.dir, ".status"), file + ".error"),
                            message + "\n");
  (void)st;  // the log line above already reports the problem
}

void StandaloneBackend::Scan() {
  auto names = env_->ListDir(opts_.dir);
  if (!names) {
    spdlog::error("standalone: {}", names.error().ToString());
    return;
  }
  std::sort(names->begin(), names->end());
  std::map<std::string, std::string> seen;  // object name -> file
  std::vector<std::string> changed;
  for (const auto& file : *names) {
    if (IsObjectFile(file)) ScanFile(file, &seen, &changed);
  }
  {
    std::lock_guard lock(mu_);
    // Finished tasks of objects that no longer exist (deleted while no operator ran): nothing
    // will ask for them again.
    for (auto t = tasks_.begin(); t != tasks_.end();) {
      if (objects_.count(t->second.obs.owner) != 0 ||
          t->second.obs.state == TaskObservation::State::kRunning) {
        ++t;
        continue;
      }
      RemoveTaskFiles(env_, opts_.dir, t->second);
      t = tasks_.erase(t);
    }
    const int64_t now = env_->NowUnixNanos();
    for (auto& [name, o] : objects_) {
      if (seen.count(name) != 0) {
        o.missing_since_ns = 0;
        continue;
      }
      if (IsBeingDeleted(o.obj)) continue;
      // Gone for a while, not just now: an editor or a copy may leave a file truncated or
      // briefly absent, and a deletion removes the version's data.
      if (o.missing_since_ns == 0) o.missing_since_ns = now;
      if (now - o.missing_since_ns < kDeleteAfterMissingNs) continue;
      o.obj["metadata"]["deletionTimestamp"] = FormatTime(now);
      o.obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
      changed.push_back(Field<std::string>(o.obj, {"spec", "model"}));
    }
  }
  for (const auto& model : changed)
    enqueue_(model);
}

void StandaloneBackend::ScanFile(const std::string& file, std::map<std::string, std::string>* seen,
                                 std::vector<std::string>* changed) {
  std::string path = JoinPath(opts_.dir, file);
  auto text = ReadFileToString(env_, path, 1 << 20);
  auto info = env_->Stat(path);
  if (!text || !info) return;  // vanished between list and read: the next scan sees it gone
  auto docs = YamlToJson(*text);
  if (!docs) {
    // Unreadable as a whole: whatever it defined before stays as it was until it is fixed.
    std::lock_guard lock(mu_);
    for (const auto& [name, o] : objects_) {
      if (o.file == file) (*seen)[name] = file;
    }
    return WriteError(file, docs.error().message());
  }
  std::string problems;
  for (auto& doc : *docs) {
    std::string name = Field<std::string>(doc, {"metadata", "name"});
    Status st = Ok();
    if (Field<std::string>(doc, {"kind"}) != "ModelVersion" ||
        Field<std::string>(doc, {"apiVersion"}) != kModelVersions.ApiVersion()) {
      st = Fail(Code::kInvalidArgument, "not a modelswap.io/v1alpha1 ModelVersion");
    } else if (st = ValidateObjectName(name); st && seen->count(name) != 0) {
      st = Fail(Code::kAlreadyExists, "\"" + name + "\" is also defined in " + (*seen)[name]);
    }
    if (st) {
      doc["metadata"]["namespace"] = "";
      if (auto mv = ParseModelVersion(doc); !mv) st = Fail(mv.error());
    }
    if (!st) {
      problems += (problems.empty() ? "" : "\n") + st.error().message();
      std::lock_guard lock(mu_);
      if (auto it = objects_.find(name); it != objects_.end() && it->second.file == file) {
        (*seen)[name] = file;  // a bad edit of an existing object keeps its last good state
      }
      continue;
    }
    (*seen)[name] = file;
    std::lock_guard lock(mu_);
    auto it = objects_.find(name);
    if (it != objects_.end() && (Field<std::string>(it->second.obj, {"spec", "model"}) !=
                                     Field<std::string>(doc, {"spec", "model"}) ||
                                 Field<std::string>(it->second.obj, {"spec", "version"}) !=
                                     Field<std::string>(doc, {"spec", "version"}))) {
      problems +=
          (problems.empty() ? "" : "\n") + name + ": spec.model and spec.version are immutable";
      continue;
    }
    AdoptLocked(name, std::move(doc), file, info->mtime_ns, changed);
  }
  std::string err_path = JoinPath(JoinPath(opts_.dir, ".status"), file + ".error");
  if (!problems.empty()) {
    WriteError(file, problems);
  } else if (env_->Stat(err_path)) {
    auto st = env_->Remove(err_path);
    (void)st;  // a stale error file is cosmetic
  }
}

void StandaloneBackend::AdoptLocked(const std::string& name, Json doc, const std::string& file,
                                    int64_t mtime_ns, std::vector<std::string>* changed) {
  std::string spec = doc["spec"].dump();
  auto it = objects_.find(name);
  if (it == objects_.end()) {
    // First sight in this process: continue from the persisted state if there is one.
    Json meta = {{"generation", 1},
                 {"creationTimestamp", FormatMicroTime(mtime_ns)},
                 {"finalizers", Json::array()},
                 {"uid", "standalone-" + name}};
    Json status = Json::object();
    std::string old_spec = spec;
    if (auto saved = ReadFileToString(env_, StatusPath(name), 1 << 20)) {
      Json s = Json::parse(*saved, nullptr, false);
      if (s.is_object() && s.contains("metadata")) {
        meta = s["metadata"];
        status = s.value("status", Json::object());
        // Files from before the spec was saved as an object hold it serialised, as a string.
        const Json& saved_spec = s.contains("spec") ? s["spec"] : Json();
        old_spec = saved_spec.is_string()   ? saved_spec.get<std::string>()
                   : saved_spec.is_object() ? saved_spec.dump()
                                            : spec;
      }
    }
    if (old_spec != spec) meta["generation"] = Field<int64_t>(meta, {"generation"}, 1) + 1;
    it = objects_.emplace(name, Object{}).first;
    it->second.obj = doc;
    it->second.obj["metadata"] = meta;
    it->second.obj["metadata"]["name"] = name;
    it->second.obj["metadata"]["namespace"] = "";
    it->second.obj["status"] = status;
  } else if (it->second.spec == spec && !IsBeingDeleted(it->second.obj)) {
    return;  // unchanged
  } else {
    Json meta = it->second.obj["metadata"];
    if (it->second.spec != spec) meta["generation"] = Field<int64_t>(meta, {"generation"}) + 1;
    meta.erase("deletionTimestamp");  // the file is back
    Json status = it->second.obj["status"];
    it->second.obj = doc;
    it->second.obj["metadata"] = meta;
    it->second.obj["status"] = status;
  }
  it->second.obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
  it->second.file = file;
  it->second.spec = spec;
  changed->push_back(Field<std::string>(doc, {"spec", "model"}));
}

Status StandaloneBackend::PersistLocked(const std::string& name) {
  const Object& o = objects_.at(name);
  Json saved = {
      {"metadata", o.obj["metadata"]}, {"spec", o.obj["spec"]}, {"status", o.obj["status"]}};
  saved["metadata"].erase("resourceVersion");
  return WriteFileAtomic(env_, StatusPath(name), saved.dump(2) + "\n");
}

void StandaloneBackend::Reap() {
  std::vector<std::string> done;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, t] : tasks_) {
      if (t.obs.state != TaskObservation::State::kRunning) continue;
      if (t.adopted) {
        // Not our child: it has ended once its pid no longer names the process we adopted.
        if (ProcessStartTicks(t.pid) == t.start_ticks) continue;
        FinishTask(env_, &t, std::nullopt);
      } else {
        auto code = TryReap(t.pid);
        if (!code) continue;
        FinishTask(env_, &t, *code);
      }
      SaveTaskLocked(t);
      spdlog::info("task finished task={} state={} reason={}", name,
                   t.obs.state == TaskObservation::State::kSucceeded ? "Succeeded" : "Failed",
                   t.obs.reason);
      done.push_back(t.model);
    }
  }
  for (const auto& m : done)
    enqueue_(m);
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

void StandaloneBackend::KillTasks() {
  std::lock_guard lock(mu_);
  for (auto& [name, t] : tasks_) {
    if (t.obs.state != TaskObservation::State::kRunning) continue;
    std::optional<int> code;
    if (t.adopted) {
      if (ProcessStartTicks(t.pid) == t.start_ticks) ::kill(t.pid, SIGTERM);
      // Not our child: wait (bounded) for it to go, then judge it by its output.
      for (int i = 0; i < 100 && ProcessStartTicks(t.pid) == t.start_ticks; ++i)
        env_->SleepForNanos(50'000'000);
      // Still there after 5 s: leave its record "Running" for the next operator to adopt.
      if (ProcessStartTicks(t.pid) == t.start_ticks) continue;
    } else {
      ::kill(t.pid, SIGTERM);
      int status = 0;
      if (::waitpid(t.pid, &status, 0) == t.pid && WIFEXITED(status)) code = WEXITSTATUS(status);
    }
    FinishTask(env_, &t, code);
    if (t.obs.state == TaskObservation::State::kSucceeded) {
      SaveTaskLocked(t);  // it finished before the signal landed: keep its result
    } else {
      // Stopped by us, not failed: forget it, so the next operator runs it again (writers
      // publish by rename, so a killed one leaves nothing half-written behind).
      spdlog::info("task stopped task={}", name);
      RemoveTaskFiles(env_, opts_.dir, t);
      t.obs.reason = "Stopped";
    }
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
      if (tasks_.count(a.task_name) != 0) return Ok();
      std::vector<std::string> argv{sidecar_bin_};
      auto args = TaskArgs(a.mv, a.task_kind, opts_.root);
      argv.insert(argv.end(), args.begin(), args.end());
      std::string base = TasksDir(opts_.dir);
      MS_RETURN_IF_ERROR(env_->CreateDirs(base));
      LocalTask t;
      t.out_path = JoinPath(base, a.task_name + ".out");
      t.err_path = JoinPath(base, a.task_name + ".err");
      MS_ASSIGN_OR_RETURN(t.pid, SpawnProcess(argv, t.out_path, t.err_path));
      // Read before the child can exit: a child that already exited (a zombie until Reap) has
      // no start time, and then a restart only reads its outcome from its output.
      t.start_ticks = ProcessStartTicks(t.pid).value_or(0);
      t.model = a.mv.model;
      t.obs.name = a.task_name;
      t.obs.kind = a.task_kind;
      t.obs.owner = a.mv.name;
      t.obs.generation = a.mv.generation;
      spdlog::info("task started task={} pid={}", a.task_name, t.pid);
      SaveTaskLocked(t);
      tasks_[a.task_name] = std::move(t);
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
