// StandaloneBackend: the reconciler's Backend over a directory of ModelVersion files, with
// tasks run as local child processes (see standalone_mode.h for the user-facing contract).
//
// Objects get what the API server would add: a generation bumped when the spec changes, a
// creation time (the file's mtime when first seen, so versions roll in the order their files
// appeared, but never before an object already known: standalone_mode.h), finalizers and a
// deletionTimestamp when the file disappears. That state is kept in DIR/.status/NAME.json next to
// the status, and each task's record in DIR/.status/tasks (tasks.h), so a restarted operator
// continues: it finds its tasks again, adopts those still running and never starts one twice.
//
// Implemented in two files: files.cc (object and status files) and
// backend.cc (tasks, agent probe, Observe/Execute).
//
// Thread safety: every method is safe from any thread (one mutex); Scan/Reap/ProbeAgent are
// called by the standalone loop, Observe/Execute by the controller's worker.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "common/env.h"
#include "operator/controller/controller.h"
#include "operator/standalone/standalone_mode.h"
#include "operator/standalone/tasks.h"

namespace modelswap::op {

class StandaloneBackend final : public Backend {
 public:
  using Enqueue = std::function<void(const std::string& model_key)>;
  StandaloneBackend(Env* env, StandaloneOptions opts, std::string sidecar_bin, Enqueue enqueue);

  // Re-reads DIR: new, changed and removed objects enqueue their model.
  void Scan();
  // Collects finished child processes; their models are enqueued.
  void Reap();
  // Asks the agent (if configured) which versions it has loaded.
  void ProbeAgent();
  // Stops running tasks (SIGTERM, then waits): writers publish by rename, so this is safe.
  void KillTasks();
  size_t running_tasks() const;

  Result<ModelInputs> Observe(const std::string& model_key) override;
  Status Execute(const Action& action) override;

 private:
  struct Object {
    Json obj;  // metadata + spec + status, as ParseModelVersion reads it
    std::string file;
    std::string spec;              // serialized spec, to detect changes
    int64_t missing_since_ns = 0;  // when a scan first did not find it (0: found last time)
  };

  void ScanFile(const std::string& file, std::map<std::string, std::string>* seen,
                std::vector<std::string>* changed);
  void AdoptLocked(const std::string& name, Json doc, const std::string& file, int64_t mtime_ns,
                   std::vector<std::string>* changed);
  Status PersistLocked(const std::string& name);
  void LoadSavedObjects();
  Status SpawnLocked(LocalTask& t);
  std::string StatusPath(const std::string& name) const;
  void WriteError(const std::string& file, const std::string& message);
  void SaveTaskLocked(const LocalTask& t);
  // Forgets failed remove tasks whose owner's spec.writer.ttlSecondsAfterFinished has passed,
  // as the TTL controller deletes a finished Job; appends their models (reconciled again).
  void ExpireFailedRemovesLocked(std::vector<std::string>* models);

  Env* env_;
  StandaloneOptions opts_;
  std::string sidecar_bin_;
  Enqueue enqueue_;
  mutable std::mutex mu_;
  std::map<std::string, Object> objects_;
  std::map<std::string, LocalTask> tasks_;  // by task name
  std::map<std::string, ModelLoad> loads_;
  bool probed_ = false;
  bool first_scan_ = true;  // Scan() thread only
  // The newest creation time of the objects known when the current scan started (unix ns; 0:
  // none). An object first seen by this scan is created after it, whatever its file's mtime says
  // (files.cc, AdoptLocked). Written by Scan() under mu_.
  int64_t newest_known_created_ns_ = 0;
  bool stopping_ = false;  // KillTasks ran: no more retries
  uint64_t rv_ = 0;
};

}  // namespace modelswap::op
