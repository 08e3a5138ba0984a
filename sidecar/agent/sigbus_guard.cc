// The SIGBUS handler and the per-thread jump target (see sigbus_guard.h).
#include "sidecar/agent/sigbus_guard.h"

#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#include "common/sigbus_reraise.h"

namespace modelswap::agent {
namespace {

thread_local sigjmp_buf* tl_jump = nullptr;
thread_local void* tl_fault_address = nullptr;
struct sigaction g_previous {};

void OnSigbus(int sig, siginfo_t* info, void* context) {
  // si_code > 0: raised by the kernel for a fault on this thread (BUS_ADRERR past the end of a
  // file...). A SIGBUS sent by a process (kill -BUS, si_code <= 0) says nothing about our
  // mapping, even if it lands while a guard runs: swallowing it would hide an operator's (or a
  // supervisor's) signal, so it goes to the previous disposition.
  if (info != nullptr && info->si_code > 0 && tl_jump != nullptr) {
    tl_fault_address = info->si_addr;
    siglongjmp(*tl_jump, 1);  // restores the signal mask saved by sigsetjmp(..., 1)
  }
  PassSigbusOn(g_previous, sig, info, context);  // not ours (common/sigbus_reraise.h)
}

void InstallOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

Status RunSigbusGuarded(std::string_view what, const std::function<Status()>& fn) {
  InstallOnce();
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) {
    tl_jump = nullptr;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    char addr[32];
    std::snprintf(addr, sizeof addr, "%p", tl_fault_address);
    return Fail(Code::kIOError, std::string(what) + ": SIGBUS reading the mapping at " + addr +
                                    " (file truncated under it?)");
  }
  tl_jump = &jump;
  // Signal fences: the handler runs on this thread, so only compiler reordering matters.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  Status st = fn();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tl_jump = nullptr;
  return st;
}

}  // namespace modelswap::agent
