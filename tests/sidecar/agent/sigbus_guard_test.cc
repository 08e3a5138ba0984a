// RunSigbusGuarded against SIGBUS that no fault raised (kill -BUS, raise): it must reach the
// disposition installed before the guard's handler, never be swallowed as a "truncated file".
// Each case runs in a fresh process (death test style "threadsafe" re-executes the binary), so
// the once-installed handler chains to what that process installed first.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

#include "sidecar/agent/sigbus_guard.h"

namespace modelswap::agent {
namespace {

std::atomic<int> g_seen{0};  // lock-free: written by a signal handler
void CountingHandler(int) {
  g_seen.fetch_add(1, std::memory_order_relaxed);  // relaxed: read on the same thread after
}

// How a process dies of a SIGBUS that reaches the default disposition. Under AddressSanitizer
// the disposition installed first is ASan's own handler (handle_sigbus=1), which reports the
// signal and exits with code 1 instead: that too shows the signal was not swallowed (a swallowed
// one ends in _Exit(0) or 3 below).
bool DiedOfSentSigbus(int status) {
#if defined(__SANITIZE_ADDRESS__)
  if (WIFEXITED(status) && WEXITSTATUS(status) == 1) return true;
#endif
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS;
}
#if defined(__SANITIZE_ADDRESS__)
constexpr char kSentSigbusOutput[] = "AddressSanitizer: BUS";
#else
constexpr char kSentSigbusOutput[] = "";
#endif

class SigbusGuardSentTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(SigbusGuardSentTest, SentSigbusOutsideAGuardKillsByDefault) {
  EXPECT_EXIT(
      {
        (void)RunSigbusGuarded("install", [] { return Ok(); });
        ::kill(::getpid(), SIGBUS);
        std::_Exit(0);  // swallowed: the bug
      },
      DiedOfSentSigbus, kSentSigbusOutput);
}

TEST_F(SigbusGuardSentTest, SentSigbusInsideAGuardIsNotTakenForAFault) {
  EXPECT_EXIT(
      {
        auto st = RunSigbusGuarded("guarded", [] {
          ::raise(SIGBUS);
          return Ok();
        });
        std::_Exit(st.has_value() ? 0 : 3);  // 3: reported as a truncated mapping
      },
      DiedOfSentSigbus, kSentSigbusOutput);
}

TEST_F(SigbusGuardSentTest, SentSigbusReachesThePreviousHandler) {
  EXPECT_EXIT(
      {
        struct sigaction sa {};
        sa.sa_handler = CountingHandler;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGBUS, &sa, nullptr);
        auto st = RunSigbusGuarded("guarded", [] {
          ::raise(SIGBUS);
          return Ok();
        });
        ::raise(SIGBUS);  // outside the guard too
        std::_Exit(st.has_value() && g_seen.load(std::memory_order_relaxed) == 2 ? 0 : 4);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(SigbusGuardSentTest, IgnoredBeforeStaysIgnored) {
  EXPECT_EXIT(
      {
        ::signal(SIGBUS, SIG_IGN);
        (void)RunSigbusGuarded("install", [] { return Ok(); });
        ::kill(::getpid(), SIGBUS);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace modelswap::agent
