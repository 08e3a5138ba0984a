// Standalone task records: what the operator knows about each local task process, kept on disk
// so that an operator restart neither forgets a task nor runs two copies of it at once.
//
// In a cluster a task is a Job, and the API server remembers it. In standalone mode the task is a
// child process. Its record is DIR/.status/tasks/TASK.json (written atomically before the spawn
// and again with the pid and at the end), beside TASK.out and TASK.err (its stdout and stderr) and
// TASK.lock, a lifetime lock the process holds until it exits (subprocess.h): whether it still
// runs is then a question any later operator can answer, with no pid to be fooled by.
//
// An operator that starts finds every record again (LoadTaskRecords):
//   - finished tasks come back as they ended (the reconciler may still need their results);
//   - a task recorded as running whose lock is held is adopted: watched until the lock is free,
//     never started again (StartTask also adopts a task whose lock is held without a record);
//   - a task recorded as running whose lock is free ended while no operator watched.
// An adopted task is not this process's child, so its exit code cannot be collected; its outcome
// is read from its output (the sidecar prints one result JSON, task.h): a success result is a
// success, an error result a failure; no result at all means it was killed (with its operator,
// by a reboot) and the record is forgotten, so the task simply runs again, which is safe:
// writers reuse a complete file and publish by rename.
//
// A finished record stays until its owner goes, except a failed remove's: it expires after the
// owner's spec.writer.ttlSecondsAfterFinished (StandaloneBackend::ExpireFailedRemovesLocked), as
// its Job would in a cluster, so retention can try again.
//
// Thread safety: pure functions over the files; callers serialise access to one task.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/env.h"
#include "operator/controller/task.h"

namespace modelswap::op {

struct LocalTask {
  TaskObservation obs;
  std::string model;
  pid_t pid = -1;        // our child's pid; -1 for an adopted task (not ours to signal or wait)
  bool adopted = false;  // started by an earlier operator process
  // Like a Job's backoffLimit: a child of ours that fails is started again (same arguments) as
  // long as retries are left. An adopted task cannot be: its arguments are not known here.
  std::vector<std::string> argv;
  int attempts = 1;
  int retries_left = 0;
  std::string out_path, err_path, lock_path;
};

// DIR/.status/tasks: where records, outputs and locks of tasks go.
std::string TasksDir(const std::string& objects_dir);

// A running task's paths and observation, not yet started.
LocalTask NewLocalTask(const std::string& objects_dir, const std::string& name, TaskKind kind,
                       const std::string& owner, int64_t generation, const std::string& model,
                       const ActivateRequest& request = {});

// Writes t's record (atomically) to TasksDir.
Status SaveTaskRecord(Env* env, const std::string& objects_dir, const LocalTask& t);

// Removes t's record, outputs and lock (it is forgotten, or the version it belonged to is gone).
void RemoveTaskFiles(Env* env, const std::string& objects_dir, const LocalTask& t);

// Every readable record in TasksDir, running ones checked against their locks as described above
// (adopted, finished from their output, or forgotten). Unreadable records are logged and skipped.
std::vector<LocalTask> LoadTaskRecords(Env* env, const std::string& objects_dir);

// Fills t's outcome once its process has exited: `exit_code` from waitpid, or nullopt for an
// adopted task, whose outcome is read from its output. Returns false when there is no outcome to
// record (an adopted task that left no result): the caller forgets the task.
bool FinishTask(Env* env, LocalTask* t, std::optional<int> exit_code);

}  // namespace modelswap::op
