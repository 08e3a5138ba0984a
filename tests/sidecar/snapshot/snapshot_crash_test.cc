// The snapshot crash test, with real processes: an app (snapshot-app-test-bin) updating a
// self-checking state and committing in a loop is SIGKILLed at a random moment 1000 times; the
// snapshot host (snapshot-host-test-bin) is SIGKILLed at random moments too, sometimes while the
// app runs; and sometimes the whole "pod" restarts (both killed, the shm dir wiped, the host
// restores from disk). After every restart the app verifies that it attached to exactly one
// committed state, and the test checks that state is never older than the newest generation the
// host reported durable before it died.
//
// Bounded: 1000 iterations, each waiting on child output with a generous deadline that only a
// hung child would hit. The random kill moments come from sleeping a random few milliseconds,
// which is fault injection, not synchronisation: every outcome is checked.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/sidecar/snapshot/test_dirs.h"

namespace modelswap {
namespace {

using testing::ScratchDir;

constexpr int kIterations = 1000;
constexpr int kDeadlineMs = 60'000;  // only a hung child gets near this

// A child process whose stdout we read line by line.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(p[1], 1);
      std::vector<char*> args;
      for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      _exit(127);
    }
    ::close(p[1]);
    fd_ = p[0];
  }
  ~Child() {
    Kill();
    if (fd_ >= 0) ::close(fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next line; nullopt at end of output (or at the deadline, which fails the test).
  std::optional<std::string> ReadLine() {
    for (;;) {
      if (auto line = TakeLine()) return line;
      if (!Fill(kDeadlineMs)) return std::nullopt;
    }
  }
  // Complete lines readable right now.
  std::vector<std::string> ReadAvailable() {
    while (Fill(0)) {
    }
    return TakeAll();
  }
  // SIGKILL, reap, and return every line it wrote (the pipe ends when the process is gone).
  std::vector<std::string> Kill() {
    if (pid_ <= 0) return {};
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    while (Fill(kDeadlineMs)) {
    }
    return TakeAll();
  }

 private:
  // Reads what is there within timeout_ms; false at EOF or timeout.
  bool Fill(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) {
      if (timeout_ms > 0) ADD_FAILURE() << "child output deadline passed";
      return false;
    }
    char buf[4096];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    buf_.append(buf, static_cast<size_t>(n));
    return true;
  }
  std::optional<std::string> TakeLine() {
    const size_t nl = buf_.find('\n');
    if (nl == std::string::npos) return std::nullopt;
    std::string line = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    return line;
  }
  std::vector<std::string> TakeAll() {
    std::vector<std::string> out;
    while (auto l = TakeLine())
      out.push_back(*l);
    return out;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
};

uint64_t Field(const std::string& line, const std::string& key) {
  const size_t at = line.find(key + "=");
  return at == std::string::npos ? UINT64_MAX : std::stoull(line.substr(at + key.size() + 1));
}

class CrashTest : public ::testing::Test {
 protected:
  void StartHost() {
    host_.reset();
    host_ = std::make_unique<Child>(
        std::vector<std::string>{SNAPSHOT_HOST_BIN, shm_.path(), snaps_.path(), "1", "3"});
    std::optional<std::string> ready = host_->ReadLine();
    Log("host start: " + ready.value_or("(died)"));
    ASSERT_TRUE(ready) << "host died before it was ready";
    ASSERT_EQ(*ready, "ready ok");
  }
  void KillHost() {
    for (const std::string& line : host_->Kill())
      Note(line);
    host_.reset();
    ++host_kills_;
  }
  void Note(const std::string& line) {
    Log("host: " + line);
    if (line.rfind("durable state ", 0) == 0)
      max_durable_ = std::max<uint64_t>(max_durable_, std::stoull(line.substr(14)));
  }
  void DrainHost() {
    for (const std::string& line : host_->ReadAvailable())
      Note(line);
  }

  // SNAPSHOT_CRASH_LOG=FILE records every event, for reading a failure afterwards.
  void Log(const std::string& line) {
    static FILE* f = std::getenv("SNAPSHOT_CRASH_LOG")
                         ? std::fopen(std::getenv("SNAPSHOT_CRASH_LOG"), "w")
                         : nullptr;
    if (f) std::fprintf(f, "%s\n", line.c_str()), std::fflush(f);
  }

  ScratchDir shm_{true}, snaps_{false};
  std::unique_ptr<Child> host_;
  uint64_t max_durable_ = 0;
  int host_kills_ = 0;
};

TEST_F(CrashTest, KilledAppAndHostNeverTearOrLoseDurableState) {
  const char* env_seed = std::getenv("SNAPSHOT_CRASH_SEED");
  const uint64_t seed = env_seed ? std::stoull(env_seed) : std::random_device{}();
  std::cout << "seed " << seed << " (set SNAPSHOT_CRASH_SEED to repeat)\n";
  std::mt19937_64 rng(seed);
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  const std::vector<std::string> app_argv{SNAPSHOT_APP_BIN, shm_.path(), "state", "64"};

  StartHost();
  uint64_t last_attach = 0;
  int pod_restarts = 0, rolled_back = 0, rolled_forward = 0, restored = 0, early_kills = 0;
  bool after_pod_restart = false;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i) + ", seed " + std::to_string(seed));
    // Everything the host reported before this app starts must be in what the app finds. (Lines
    // arriving later may be about this app's own commits.)
    DrainHost();
    const uint64_t durable_before = max_durable_;
    Child app(app_argv);
    if (chance(5)) {  // killed during start-up and recovery: the next attach must still work
      ::usleep(static_cast<useconds_t>(rng() % 2000));
      app.Kill();
      ++early_kills;
      continue;
    }
    std::optional<std::string> line = app.ReadLine();
    ASSERT_TRUE(line) << "app died before attaching";
    Log("iteration " + std::to_string(i) + " app: " + *line);
    ASSERT_EQ(line->rfind("attach ", 0), 0u) << *line;
    const uint64_t gen = Field(*line, "gen");
    ASSERT_GE(gen, durable_before) << "attached to generation " << gen << " older than durable "
                                   << durable_before << ": " << *line;
    if (!after_pod_restart) {
      ASSERT_GE(gen, last_attach) << *line;
    }
    last_attach = gen;
    after_pod_restart = false;
    rolled_back += Field(*line, "rolled_back") > 0;
    rolled_forward += Field(*line, "rolled_forward") == 1;
    restored += Field(*line, "restored") == gen && gen > 0;

    if (chance(20)) {  // the host dies while the app is running, and comes back
      ::usleep(static_cast<useconds_t>(rng() % 4000));
      Log("kill host while app runs");
      KillHost();
      ASSERT_NO_FATAL_FAILURE(StartHost());
    }
    ::usleep(static_cast<useconds_t>(rng() % 6000));
    app.Kill();
    if (chance(8)) {  // the pod restarts: memory is gone, only the snapshots remain
      Log("pod restart");
      KillHost();
      std::filesystem::remove_all(shm_ / "regions");
      ASSERT_NO_FATAL_FAILURE(StartHost());
      ++pod_restarts;
      after_pod_restart = true;
    } else if (chance(10)) {  // the host dies between app runs
      Log("kill host between app runs");
      KillHost();
      ASSERT_NO_FATAL_FAILURE(StartHost());
    }
  }
  std::cout << "iterations " << kIterations << " early_kills " << early_kills << " pod_restarts "
            << pod_restarts << " host_kills " << host_kills_ << " rolled_back " << rolled_back
            << " rolled_forward " << rolled_forward << " restored_attaches " << restored
            << " max_durable " << max_durable_ << " last_attach " << last_attach << "\n";
  EXPECT_GT(pod_restarts, 0);
  EXPECT_GT(max_durable_, 0u);
}

}  // namespace
}  // namespace modelswap
