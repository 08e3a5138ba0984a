// Running a command in a child process and collecting its exit code, stdout and stderr.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace modelswap::testing {

struct RunResult {
  int exit_code = -1;  // -1 if killed by a signal
  std::string out;
  std::string err;
};

inline std::string ReadFd(int fd) {
  std::string s;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    s.append(buf, static_cast<size_t>(n));
  return s;
}

// Runs argv to completion. stderr goes to a temp file so neither pipe can fill and block.
inline RunResult Run(const std::vector<std::string>& argv) {
  int out_pipe[2];
  if (::pipe(out_pipe) != 0) return {};
  char err_path[] = "/tmp/modelswap-stderr-XXXXXX";
  int err_fd = ::mkstemp(err_path);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_fd, 2);
    ::close(out_pipe[0]);
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(out_pipe[1]);
  RunResult r;
  r.out = ReadFd(out_pipe[0]);
  ::close(out_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  ::lseek(err_fd, 0, SEEK_SET);
  r.err = ReadFd(err_fd);
  ::close(err_fd);
  ::unlink(err_path);
  return r;
}

}  // namespace modelswap::testing
