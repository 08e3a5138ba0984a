// Standalone task records: what the operator knows about each local task process, kept on disk
// so that an operator restart neither forgets a task nor runs it twice.
//
// In a cluster a task is a Job, and the API server remembers it. In standalone mode the task is a
// child process; its record lives in DIR/.status/tasks/TASK.json beside TASK.out and TASK.err
// (the process's stdout and stderr), written atomically when the task starts and when it ends.
// An operator that starts finds every record again (LoadTaskRecords):
//   - finished tasks come back as they ended (the reconciler may still need their results);
//   - a task recorded as running whose process still runs (same pid and same start time, so a
//     reused pid is not mistaken for it) is adopted: watched until it exits, never started again;
//   - a task recorded as running whose process is gone ended while no operator watched.
// An adopted task is not this process's child, so its exit code cannot be collected. Its outcome
// is then read from its output: the sidecar prints its result JSON on stdout only on success,
// and an error JSON otherwise (task.h), so a success result means success; anything else is a
// failure with reason "ExitCodeUnknown" and stderr's last line. Thread safety: pure functions
// over the files; callers serialise access to one record.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/env.h"
#include "operator/task.h"

namespace modelswap::op {

struct LocalTask {
  TaskObservation obs;
  std::string model;
  pid_t pid = -1;
  uint64_t start_ticks = 0;  // ProcessStartTicks(pid) when it was spawned; 0 = unknown
  bool adopted = false;      // started by an earlier operator process: not our child
  std::string out_path, err_path;
};

// DIR/.status/tasks: where records, stdout and stderr of tasks go.
std::string TasksDir(const std::string& objects_dir);

// Writes t's record (atomically) to TasksDir.
Status SaveTaskRecord(Env* env, const std::string& objects_dir, const LocalTask& t);

// Removes t's record and output files (the version it belonged to is gone).
void RemoveTaskFiles(Env* env, const std::string& objects_dir, const LocalTask& t);

// Every readable record in TasksDir, running ones checked against the live processes as described
// above (adopted, or finished from their output). Unreadable records are logged and skipped;
// the reconciler then treats their task as never started.
std::vector<LocalTask> LoadTaskRecords(Env* env, const std::string& objects_dir);

// Fills t's outcome once its process has exited: `exit_code` from waitpid, or nullopt when the
// process was not our child (adopted) and the outcome must be read from its output.
void FinishTask(Env* env, LocalTask* t, std::optional<int> exit_code);

}  // namespace modelswap::op
