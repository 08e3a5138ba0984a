// Passing on a SIGBUS that a modelswap handler decided is not its own.
//
// Two handlers in this tree catch SIGBUS for file mappings that shrink under a reader: the
// agent's siglongjmp guard (sidecar/agent/sigbus_guard.h) and the mapping guard that remaps the
// lost pages (common/mapping_guard.h). Each installs itself once per process, remembers the
// disposition it replaced, and hands every SIGBUS that is not a fault inside its own ranges to
// that disposition, so an app's (or the other guard's) handler keeps working and a stray fault
// still kills the process as it would have without us. This is that hand-over, in one place.
//
// Async-signal safe: it calls only the previous handler, sigaction(2) and raise(3).
#pragma once

#include <signal.h>

namespace modelswap {

// Hands (sig, info, context) to `previous`, the disposition our handler replaced:
//   - a handler (SA_SIGINFO or not) is called;
//   - SIG_IGN ignores a signal sent by a process (kill(2), raise(3), sigqueue(3): si_code <= 0),
//     as it was ignored before us; a kernel fault cannot be ignored and is treated as SIG_DFL;
//   - SIG_DFL: our handler is replaced by SIG_DFL. A fault re-runs the faulting instruction when
//     the handler returns and the kernel kills the process then (with a core, the fault address
//     intact); a sent signal is raised again here and stays pending (blocked while the handler
//     runs) until the handler returns, then kills the process.
// Call it from a SIGBUS handler only, and return from the handler right after.
void PassSigbusOn(const struct sigaction& previous, int sig, siginfo_t* info, void* context);

}  // namespace modelswap
