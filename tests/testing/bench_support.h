// What the command-line benchmarks share (bench/chunk/chunk_storage_bench.cc,
// bench/delta/delta_write_bench.cc, bench/delta/delta_swap_bench.cc): a scratch directory per run,
// a monotonic clock in seconds, and Must(), which ends the run on the first error (a benchmark
// has no caller to hand a Status to; its numbers would be meaningless after one).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "common/status.h"

namespace modelswap::bench {

// $MODELSWAP_BENCH_DIR (else /tmp)/modelswap-<name>-<pid>: one per run, so runs never collide.
inline std::string ScratchDir(const std::string& name) {
  const char* d = std::getenv("MODELSWAP_BENCH_DIR");
  return std::string(d ? d : "/tmp") + "/modelswap-" + name + "-" + std::to_string(::getpid());
}

// Seconds on the steady clock: only differences mean anything.
inline double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The value of `r`, or exit 1 naming `what` and the error.
template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", what, r.error().ToString().c_str());
    std::exit(1);
  }
  return std::move(*r);
}
inline void Must(Status s, const char* what) {
  if (!s) {
    std::fprintf(stderr, "%s: %s\n", what, s.error().ToString().c_str());
    std::exit(1);
  }
}

}  // namespace modelswap::bench
