// Rate-limited progress lines on stderr and the process's progress board; see progress.h.
#include "sidecar/writer/progress.h"

#include <unistd.h>

#include <cstdio>

namespace modelswap {

ProgressBoard& ProgressBoard::Process() {
  static ProgressBoard board;
  return board;
}

ProgressSnapshot ProgressBoard::Read() const {
  ProgressSnapshot s{done_.load(std::memory_order_relaxed), total_.load(std::memory_order_relaxed),
                     finished_.load(std::memory_order_relaxed)};
  if (s.total > 0 && (s.finished || s.done > s.total)) s.done = s.total;
  return s;
}

void ProgressBoard::Reset() {
  done_.store(0, std::memory_order_relaxed);
  total_.store(0, std::memory_order_relaxed);
  finished_.store(false, std::memory_order_relaxed);
}

bool StderrIsTerminal() {
  return ::isatty(STDERR_FILENO) == 1;
}

Progress::Progress(Env* env, std::string what, uint64_t total_bytes, bool enabled)
    : env_(env),
      what_(std::move(what)),
      total_(total_bytes),
      enabled_(enabled),
      start_ns_(env->NowMonotonicNanos()),
      last_print_ns_(start_ns_) {}

void Progress::Update(uint64_t done_bytes) {
  ProgressBoard::Process().SetDone(done_bytes);
  if (!enabled_) return;
  int64_t now = env_->NowMonotonicNanos();
  if (now - last_print_ns_ < 1'000'000'000) return;
  last_print_ns_ = now;
  Print(done_bytes, false);
}

void Progress::Done(uint64_t done_bytes) {
  ProgressBoard::Process().SetDone(done_bytes);
  ProgressBoard::Process().Finish();
  if (!enabled_) return;
  if (printed_ || env_->NowMonotonicNanos() - start_ns_ >= 1'000'000'000) Print(done_bytes, true);
}

void Progress::Print(uint64_t done, bool final) {
  printed_ = true;
  double secs = static_cast<double>(env_->NowMonotonicNanos() - start_ns_) / 1e9;
  double mib = static_cast<double>(done) / (1 << 20);
  double rate = secs > 0 ? mib / secs : 0;
  if (total_ > 0) {
    std::fprintf(stderr, "%s: %.0f / %.0f MiB (%.0f%%), %.0f MiB/s%s\n", what_.c_str(), mib,
                 static_cast<double>(total_) / (1 << 20),
                 100.0 * static_cast<double>(done) / static_cast<double>(total_), rate,
                 final ? ", done" : "");
  } else {
    std::fprintf(stderr, "%s: %.0f MiB, %.0f MiB/s%s\n", what_.c_str(), mib, rate,
                 final ? ", done" : "");
  }
}

}  // namespace modelswap
