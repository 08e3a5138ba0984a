// Progress lines on stderr for long-running commands (write, verify): at most one a second,
// and only when stderr is a terminal or --progress forces it, so logs stay quiet in Jobs.
#pragma once

#include <cstdint>
#include <string>

#include "common/env.h"

namespace modelswap {

class Progress {
 public:
  // total_bytes may be 0 when unknown.
  Progress(Env* env, std::string what, uint64_t total_bytes, bool enabled);
  void Update(uint64_t done_bytes);
  // Prints the final line (if enabled and anything was printed or the work took over a second).
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
