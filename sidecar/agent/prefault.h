// Prefaulting a mapped version: every page resident and mapped before apps are pointed at it.
//
// First choice MADV_POPULATE_READ (Linux >= 5.14): the kernel faults the whole range in, with
// read-ahead, and reports a page it cannot read (EFAULT: truncated file; EIO) as an error rather
// than SIGBUS. Where the kernel lacks it, MADV_WILLNEED starts read-ahead and we touch one byte
// per page, under the SIGBUS guard (sigbus_guard.h). The range is split into chunks populated by
// `threads` threads, which keeps more I/O in flight on network filesystems.
//
// Thread safety: a plain function; the mapping must stay alive for the call.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::agent {

struct PrefaultResult {
  std::string method;  // "populate_read" or "willneed+touch"
  double seconds = 0;
};

[[nodiscard]] Result<PrefaultResult> Prefault(Env* env, std::span<const std::byte> region,
                                              int threads = 2);

// The fallback alone (used when PopulateRead is not supported; exposed for tests and benches).
[[nodiscard]] Status TouchPages(Env* env, std::span<const std::byte> region);

}  // namespace modelswap::agent
