// Progress of long-running commands (write, verify), two ways:
//  - lines on stderr: at most one a second, and only when stderr is a terminal or --progress
//    forces it, so logs stay quiet in Jobs;
//  - the process's ProgressBoard: bytes done of total, always kept, for whoever asks while the
//    command runs (the writer pod's progress endpoint, `write --progress-addr`, which the operator
//    polls to put status.progress on the ModelVersion).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/env.h"

namespace modelswap {

struct ProgressSnapshot {
  uint64_t done = 0;
  uint64_t total = 0;  // 0 = unknown
  bool finished = false;
};

// Bytes done of total for the one long command a process runs. Process-wide, not passed in,
// because the Progress below is built inside WriteVersion (writer.h), whose request carries no
// sink; a process runs one write.
//
// Memory order: relaxed everywhere. Each field is a figure read for display on its own; nothing
// else is published through them, and a reader that sees `done` before a `total` set just before
// it only shows the total a poll later.
class ProgressBoard {
 public:
  static ProgressBoard& Process();

  // The total the command's source holds (generate: the bytes asked for; a file: its size), in
  // the unit Progress::Update counts for it.
  void SetTotal(uint64_t total) { total_.store(total, std::memory_order_relaxed); }
  void SetDone(uint64_t done) { done_.store(done, std::memory_order_relaxed); }
  // Everything was read and built (the file is not yet synced or renamed).
  void Finish() { finished_.store(true, std::memory_order_relaxed); }
  // done <= total when the total is known; done = total once finished.
  ProgressSnapshot Read() const;
  void Reset();  // for tests

 private:
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> total_{0};
  std::atomic<bool> finished_{false};
};

class Progress {
 public:
  // total_bytes may be 0 when unknown. Only the stderr lines use it (the board's total is set by
  // the command, which knows the source's size in Update's unit).
  Progress(Env* env, std::string what, uint64_t total_bytes, bool enabled);
  // Records done_bytes on the board; prints a line if enabled and a second has passed.
  void Update(uint64_t done_bytes);
  // Marks the board finished; prints the final line (if enabled and anything was printed or
  // the work took over a second).
  void Done(uint64_t done_bytes);

 private:
  void Print(uint64_t done_bytes, bool final);
  Env* env_;
  std::string what_;
  uint64_t total_;
  bool enabled_;
  int64_t start_ns_;
  int64_t last_print_ns_;
  bool printed_ = false;
};

// True when stderr is a terminal.
bool StderrIsTerminal();

}  // namespace modelswap
