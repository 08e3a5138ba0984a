// The SIGBUS handler and the per-thread jump target (see sigbus_guard.h).
#include "sidecar/agent/sigbus_guard.h"

#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <mutex>

namespace modelswap::agent {
namespace {

thread_local sigjmp_buf* tl_jump = nullptr;
thread_local void* tl_fault_address = nullptr;
struct sigaction g_previous {};

// Hands a SIGBUS that is not ours to the disposition installed before ours (as
// sidecar/client/model/mapping_guard.cc does).
void PassOn(int sig, siginfo_t* info, void* context) {
  if ((g_previous.sa_flags & SA_SIGINFO) != 0) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(sig, info, context);
    return;
  }
  const bool sent = info == nullptr || info->si_code <= 0;  // kill(2), raise(3), sigqueue(3)
  if (g_previous.sa_handler == SIG_IGN && sent) return;     // ignored, as it was before us
  if (g_previous.sa_handler != SIG_IGN && g_previous.sa_handler != SIG_DFL) {
    g_previous.sa_handler(sig);
    return;
  }
  // The default: die of it. A fault re-runs the faulting load when we return and the kernel
  // kills the process then (with a core); a sent signal is raised again and stays pending
  // (blocked while this handler runs) until we return, then kills the process.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  if (sent) ::raise(sig);
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  // si_code > 0: raised by the kernel for a fault on this thread (BUS_ADRERR past the end of a
  // file...). A SIGBUS sent by a process (kill -BUS, si_code <= 0) says nothing about our
  // mapping, even if it lands while a guard runs: swallowing it would hide an operator's (or a
  // supervisor's) signal, so it goes to the previous disposition.
  if (info != nullptr && info->si_code > 0 && tl_jump != nullptr) {
    tl_fault_address = info->si_addr;
    siglongjmp(*tl_jump, 1);  // restores the signal mask saved by sigsetjmp(..., 1)
  }
  PassOn(sig, info, context);
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
