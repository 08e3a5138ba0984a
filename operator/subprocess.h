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

namespace modelswap::op {

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

// Starts argv[0] with stdout/stderr redirected to files (created/truncated).
Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, const std::string& stdout_path,
                           const std::string& stderr_path);

// Non-blocking reap: nullopt while running, else the exit code (128+signal if signalled).
std::optional<int> TryReap(pid_t pid);

// When process `pid` started, in clock ticks since boot (/proc/PID/stat field 22): with the pid,
// it names one process for good, since a reused pid gets a later start. nullopt if there is no
// such process or it has exited (a zombie waiting to be reaped). Linux only.
std::optional<uint64_t> ProcessStartTicks(pid_t pid);

}  // namespace modelswap::op
