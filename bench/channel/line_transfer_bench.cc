// line_transfer_bench: how fast this machine moves cache lines from one core to another, the
// hardware floor under channel_bench's latencies.
//
//   line_transfer_bench [--cpus A,B] [--rounds N]
//
// A writer thread on cpu A writes L cache lines (L = 1 and 48: one line, and a ~3 KB message);
// then the reader thread on cpu B, told over a separate flag line, loads one word of each line
// and times only those loads. The lines are in one of these states when the reader asks:
//   modified   still in the writer's private caches (what a reader meets right after a publish)
//   demoted    written, then CLDEMOTEd (pushed toward the shared L3) before the signal (whose
//              store waits behind the demotions, so they have landed when the reader starts)
//   flushed    written back to memory with CLFLUSH
//   local      already in the reader's own cache (the loop's own cost)
// Printed: p50 per state and L, and "in flight" = L x (1-line time) / (L-line time), how many of
// the L misses the core overlapped. One-way latency of an L-line message cannot be below the
// flag's one-way trip plus the L-line time of the state the lines are in; channel_bench's
// ratio to the round trip is read against this. Last, the writer's own cost of demoting 48 lines
// (why channel.cc demotes after publishing, not before). Not a test: run by hand on an idle
// machine.
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) std::perror("sched_setaffinity");
}

// lfence on both sides: rdtsc must not run before the loads it is meant to follow.
inline uint64_t Tsc() {
  _mm_lfence();
  const uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

double NsPerTick() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t c0 = __rdtsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const uint64_t c1 = __rdtsc();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
         double(c1 - c0);
}

enum class State { kModified, kDemoted, kFlushed, kLocal };

constexpr int kMaxLines = 48;
constexpr int kBuffers = 8;  // rotated, so no state carries over from the previous round

// One independent load per line: every miss can be in flight at once, as in a message copy.
uint64_t TimeLoads(const volatile uint64_t* lines, int count) {
  uint64_t sum = 0;
  const uint64_t t0 = Tsc();
  for (int i = 0; i < count; ++i)
    sum += lines[i * 8];
  const uint64_t t1 = Tsc();
  asm volatile("" : : "r"(sum));  // keeps the loads
  return t1 - t0;
}

double Measure(State state, int count, uint64_t settle_ticks, int cpu_w, int cpu_r, int rounds,
               double ns_per_tick) {
  alignas(4096) static uint64_t buf[kBuffers][kMaxLines * 8];
  // The handshake: the reader asks (1), the writer prepares the lines and answers (2). Acquire /
  // release on both sides: the reader's loads must see the writer's stores (and, for kLocal, the
  // writer's stores must not race with the reader's warm-up loads).
  alignas(128) static std::atomic<int> turn{0};
  turn.store(0, std::memory_order_relaxed);
  std::vector<uint64_t> ticks(rounds);
  std::thread writer([&] {
    Pin(cpu_w);
    for (int r = 0; r < rounds; ++r) {
      while (turn.load(std::memory_order_acquire) != 1) {
      }
      uint64_t* lines = buf[r % kBuffers];
      for (int i = 0; i < count; ++i)
        lines[i * 8] = uint64_t(r);
      if (state == State::kDemoted) {
        for (int i = 0; i < count; ++i)
          asm volatile("cldemote %0" : : "m"(lines[i * 8]));  // a NOP without CLDEMOTE
      } else if (state == State::kFlushed) {
        for (int i = 0; i < count; ++i)
          _mm_clflush(&lines[i * 8]);
        _mm_mfence();
      }
      const uint64_t until = __rdtsc() + settle_ticks;
      while (__rdtsc() < until) {
      }
      turn.store(2, std::memory_order_release);
    }
  });
  Pin(cpu_r);
  for (int r = 0; r < rounds; ++r) {
    turn.store(1, std::memory_order_release);
    while (turn.load(std::memory_order_acquire) != 2) {
    }
    const volatile uint64_t* lines = buf[r % kBuffers];
    if (state == State::kLocal) TimeLoads(lines, count);
    ticks[r] = TimeLoads(lines, count);
  }
  writer.join();
  std::sort(ticks.begin(), ticks.end());
  return double(ticks[rounds / 2]) * ns_per_tick;
}

// The writer's side of demotion: 48 line stores then mfence (which waits until they are in the
// cache), with and without a CLDEMOTE per line before the fence. The difference is what demoting a
// message before publishing it would add to the writer's critical path.
double WriterDrainNs(bool demote, int cpu_w, int rounds, double ns_per_tick) {
  alignas(4096) static uint64_t buf[kBuffers][kMaxLines * 8];
  Pin(cpu_w);
  std::vector<uint64_t> ticks(rounds);
  for (int r = 0; r < rounds; ++r) {
    uint64_t* lines = buf[r % kBuffers];
    for (int i = 0; i < kMaxLines; ++i)  // own the lines first, as Publish's prefetch does
      asm volatile("prefetchw %0" : : "m"(lines[i * 8]));
    const uint64_t t0 = Tsc();
    for (int i = 0; i < kMaxLines; ++i)
      lines[i * 8] = uint64_t(r);
    if (demote) {
      for (int i = 0; i < kMaxLines; ++i)
        asm volatile("cldemote %0" : : "m"(lines[i * 8]));
    }
    _mm_mfence();
    ticks[r] = Tsc() - t0;
  }
  std::sort(ticks.begin(), ticks.end());
  return double(ticks[rounds / 2]) * ns_per_tick;
}

}  // namespace

int main(int argc, char** argv) {
  int cpu_w = 0, cpu_r = 1, rounds = 20'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--cpus") {
      std::sscanf(argv[i + 1], "%d,%d", &cpu_w, &cpu_r);
    } else if (f == "--rounds") {
      rounds = std::max(1, std::atoi(argv[i + 1]));
    } else {
      std::fprintf(stderr, "unknown flag %s (see the file comment)\n", f.c_str());
      return 1;
    }
  }
  const double ns_per_tick = NsPerTick();
  auto ticks = [&](double ns) { return uint64_t(ns / ns_per_tick); };
  struct Case {
    const char* name;
    State state;
    double settle_ns;
  };
  // The writer waits 5 us before answering, so its stores and demotions are long done.
  const Case cases[] = {
      {"modified", State::kModified, 5000},
      {"demoted", State::kDemoted, 5000},
      {"flushed", State::kFlushed, 5000},
      {"local", State::kLocal, 5000},
  };
  std::printf("cpu %d writes, cpu %d loads; p50 of %d rounds\n", cpu_w, cpu_r, rounds);
  std::printf("%-14s | %10s | %11s | %9s\n", "lines are", "1 line ns", "48 lines ns", "in flight");
  for (const Case& c : cases) {
    const double one = Measure(c.state, 1, ticks(c.settle_ns), cpu_w, cpu_r, rounds, ns_per_tick);
    const double all =
        Measure(c.state, kMaxLines, ticks(c.settle_ns), cpu_w, cpu_r, rounds, ns_per_tick);
    std::printf("%-14s | %10.0f | %11.0f | %9.1f\n", c.name, one, all, kMaxLines * one / all);
  }
  const double plain = WriterDrainNs(false, cpu_w, rounds, ns_per_tick);
  const double demoted = WriterDrainNs(true, cpu_w, rounds, ns_per_tick);
  std::printf(
      "writer: 48 stores + mfence %.0f ns; with a CLDEMOTE per line %.0f ns (+%.1f ns/line)\n",
      plain, demoted, (demoted - plain) / kMaxLines);
  return 0;
}
