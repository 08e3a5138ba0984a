// Child processes via posix_spawn; see subprocess.h.
#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/posix_error.h"

extern char** environ;

namespace modelswap {
namespace {

bool IsExecutable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> EnvWith(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    if (extra.count(kv.substr(0, kv.find('='))) == 0) env.push_back(std::move(kv));
  }
  for (const auto& [k, v] : extra)
    env.push_back(k + "=" + v);
  return env;
}

// Reads both pipes until EOF or the deadline.
bool Drain(int out_fd, int err_fd, ProcessOutput* result,
           std::chrono::steady_clock::time_point deadline) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? false : true;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      if (got > 0) {
        (i == 0 ? result->out : result->err).append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  return true;
}

}  // namespace

Result<std::string> FindProgram(const std::string& program) {
  if (program.empty()) return Fail(Code::kInvalidArgument, "program name is empty");
  if (program.find('/') != std::string::npos) {
    if (IsExecutable(program)) return program;
    return Fail(Code::kNotFound, "program " + program + " does not exist or is not executable");
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(pos, colon - pos);
    pos = colon + 1;
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    if (IsExecutable(candidate)) return candidate;
  }
  return Fail(Code::kNotFound, "program \"" + program + "\" not found in PATH (" + path + ")");
}

Result<ProcessOutput> RunProcess(const std::vector<std::string>& argv,
                                 const std::map<std::string, std::string>& extra_env,
                                 std::chrono::milliseconds timeout) {
  if (argv.empty()) return Fail(Code::kInvalidArgument, "run: empty command");
  MS_ASSIGN_OR_RETURN(std::string exe, FindProgram(argv[0]));
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe2", "for stdout of " + exe));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    Error error = ErrnoError("pipe2", "for stderr of " + exe);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return Fail(error);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<std::string> args = argv;
  std::vector<std::string> env = EnvWith(extra_env);
  auto cargs = CStrings(args);
  auto cenv = CStrings(env);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, cargs.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Fail(PosixError("posix_spawn", exe, rc));
  }
  ProcessOutput result;
  bool finished =
      Drain(out_pipe[0], err_pipe[0], &result, std::chrono::steady_clock::now() + timeout);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (!finished) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!finished) {
    return Fail(Code::kDeadlineExceeded,
                exe + " did not finish within " + std::to_string(timeout.count()) + " ms");
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, const std::string& stdout_path,
                           const std::string& stderr_path, int lock_fd) {
  if (argv.empty()) return Fail(Code::kInvalidArgument, "spawn: empty command");
  MS_ASSIGN_OR_RETURN(std::string exe, FindProgram(argv[0]));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // dup2 clears close-on-exec on the copy: only this child inherits the lock, not children other
  // threads spawn meanwhile (the caller's fd stays close-on-exec).
  // (A dup2 onto itself would not clear it, so fd 3 itself is first copied elsewhere.)
  int moved = -1;
  if (lock_fd == 3) {
    moved = lock_fd = ::fcntl(lock_fd, F_DUPFD_CLOEXEC, 10);
    if (moved < 0) {
      posix_spawn_file_actions_destroy(&fa);
      return Fail(ErrnoError("fcntl F_DUPFD_CLOEXEC", "lock fd for " + exe));
    }
  }
  if (lock_fd >= 0) posix_spawn_file_actions_adddup2(&fa, lock_fd, 3);
  // The operator blocks SIGTERM/SIGINT in all its threads (a signal thread waits for them), and a
  // spawned child would inherit that mask and ignore the SIGTERM of a graceful stop. Its own
  // process group keeps a terminal's Ctrl-C (sent to the whole foreground group) off it: the
  // operator stops its children itself, and one killed by the signal would count as failed.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<std::string> args = argv;
  auto cargs = CStrings(args);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, &attr, cargs.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (moved >= 0) ::close(moved);
  if (rc != 0) return Fail(PosixError("posix_spawn", exe, rc));
  return pid;
}

std::optional<int> TryReap(pid_t pid) {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r < 0) return -1;  // not our child any more (already reaped): report a failure
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

Result<int> AcquireLifetimeLock(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(ErrnoError("open", path));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return Fail(Code::kFailedPrecondition, path + " is held");
    return Fail(PosixError("flock", path, err));
  }
  return fd;
}

bool LifetimeLockHeld(const std::string& path) {
  // Only a lock this call obtains proves the task gone (or a lock file that is gone): any other
  // failure (EMFILE, EACCES, ...) says nothing, and "gone" would run the task a second time.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;
  // A shared lock conflicts only with the holder's exclusive one, and is dropped with the fd.
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

}  // namespace modelswap
