// Child processes for the multi-process channel tests: spawn with a pipe on stdout, read its
// lines, signal it, wait for it. Children run real binaries (fork + exec), never forked copies of
// the test, so each side has its own address space and mappings exactly as in a pod.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace modelswap::channel_test {

class Child {
 public:
  // argv[0] is the program path. Returns a Child with pid() < 0 if fork/exec setup failed.
  static Child Spawn(const std::vector<std::string>& argv) {
    Child c;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return c;
    c.pid_ = ::fork();
    if (c.pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      std::vector<char*> args;
      for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    c.out_ = ::fdopen(fds[0], "r");
    return c;
  }

  Child() = default;
  Child(Child&& o) noexcept : pid_(o.pid_), out_(o.out_) {
    o.pid_ = -1;
    o.out_ = nullptr;
  }
  Child(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {  // a failed test must not leave a spinning process behind
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) std::fclose(out_);
  }

  pid_t pid() const { return pid_; }

  // The next stdout line without its newline; "" at end of output.
  std::string ReadLine() {
    std::string line;
    for (int ch; out_ != nullptr && (ch = std::fgetc(out_)) != EOF && ch != '\n';)
      line += char(ch);
    return line;
  }

  // Waits for exit; returns the raw wait status.
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  void Kill(int sig) { ::kill(pid_, sig); }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

inline bool ExitedOk(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace modelswap::channel_test
