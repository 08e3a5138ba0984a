// Child processes: exec credential plugins (run to completion, output captured) and standalone
// writers (spawned, then polled).
//
// Programs are found like execvp does (a name with '/' is a path, else searched in PATH) before
// anything is forked, so a missing program is a clear kNotFound naming it, not a child that
// exits 127. Thread safety: free functions; safe from any thread (posix_spawn, no fork in a
// threaded process).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace modelswap {

// Absolute path of `program`, or kNotFound naming it and the PATH searched.
Result<std::string> FindProgram(const std::string& program);

struct ProcessOutput {
  int exit_code = -1;  // -1 if killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// Runs argv[0] with extra environment variables; waits at most `timeout` (then kills it and
// returns kDeadlineExceeded). stdin is /dev/null.
Result<ProcessOutput> RunProcess(const std::vector<std::string>& argv,
                                 const std::map<std::string, std::string>& extra_env,
                                 std::chrono::milliseconds timeout);

// Starts argv[0] with stdout/stderr redirected to files (created/truncated); lock_fd >= 0 is
// passed to the child as fd 3 (see AcquireLifetimeLock).
Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, const std::string& stdout_path,
                           const std::string& stderr_path, int lock_fd = -1);

// Non-blocking reap: nullopt while running, else the exit code (128+signal if signalled).
std::optional<int> TryReap(pid_t pid);

// Lifetime locks: a file whose flock(2) a spawned process holds for as long as it lives (the
// kernel drops it when the process exits, SIGKILL included), so that a later process, even one
// that is not its parent, can tell whether it still runs. Unlike a pid, the lock cannot be
// mistaken for a new process that reused the number, and a zombie holds none.
//
// AcquireLifetimeLock creates and locks `path`; the returned fd (close-on-exec) is handed to
// SpawnProcess as `lock_fd`, which gives the child its own descriptor of the lock (fd 3), after
// which the caller closes its fd. kFailedPrecondition if another process holds the lock.
Result<int> AcquireLifetimeLock(const std::string& path);
// True while some process holds the lock at `path` (false if the file does not exist).
bool LifetimeLockHeld(const std::string& path);

}  // namespace modelswap
