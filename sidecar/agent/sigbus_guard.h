// Surviving SIGBUS while reading a file mapping whose file got shorter underneath it.
//
// Touching a page of a MAP_SHARED file mapping beyond the file's current end raises SIGBUS,
// which kills the process by default. The agent reads mapped version files in two places that
// can hit that (the page-stride touch fallback of the prefault, and the full checksum
// verification), so both run inside RunSigbusGuarded: a process-wide SIGBUS handler, installed
// once, siglongjmp()s back to the guard of the faulting thread, which returns kIOError.
//
// Why this is safe enough: the guarded code only reads the mapping; it holds no locks and is not
// inside malloc when it faults (the faulting instruction is a load from the mapping). Frames the
// jump skips do not run their destructors, so a fault can leak the memory they owned (a hash
// state, a vector of offsets): bounded, and only on a file truncated during a load. A SIGBUS
// outside any guard (or in another thread) is not ours: the handler passes it to the previous
// disposition (a previous handler is called; by default the fault repeats and the process dies
// as it would have). A SIGBUS sent by a process (kill -BUS: si_code <= 0) is never ours, even
// while a guard runs: it is passed on the same way (by default raised again, so it kills).
//
// Thread safety: any number of threads may run guarded code at once (the jump target is
// thread-local). Guards do not nest.
#pragma once

#include <functional>
#include <string_view>

#include "common/status.h"

namespace modelswap::agent {

// Runs fn; returns its Status, or kIOError naming `what` and the faulting address if it raised
// SIGBUS.
[[nodiscard]] Status RunSigbusGuarded(std::string_view what, const std::function<Status()>& fn);

}  // namespace modelswap::agent
