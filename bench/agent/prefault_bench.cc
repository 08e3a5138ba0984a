// prefault_bench: the agent's prefault of a large .msf against `vmtouch -t` and `cat >/dev/null`,
// with the page cache cold and warm, in one run.
//
//   prefault_bench [--file PATH] [--bytes N] [--reps R] [--threads T]
//
// Without --file it writes a synthetic version of N bytes (default 2 GiB) under $TMPDIR. "cold"
// evicts the file first (POSIX_FADV_DONTNEED with no mapping alive) and prints the resident
// fraction mincore reports, so a failed eviction is visible; "warm" runs right after a full read.
// Prints seconds (median of R) per method and the ratios modelswap/vmtouch and modelswap/cat.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/names.h"
#include "sidecar/agent/prefault.h"
#include "sidecar/writer/writer.h"

namespace {

using namespace modelswap;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double ResidentFraction(const std::string& path) {
  auto m = DefaultEnv()->MapReadOnly(path);
  if (!m) return -1;
  auto r = DefaultEnv()->ResidentBytes((*m)->bytes());
  return r ? static_cast<double>(*r) / static_cast<double>((*m)->bytes().size()) : -1;
}

void Evict(const std::string& path) {
  (void)DefaultEnv()->DropFileCache(path);
  double f = ResidentFraction(path);
  if (f > 0.01) std::fprintf(stderr, "warning: %.1f%% still resident after eviction\n", f * 100);
}

double RunShell(const std::string& cmd) {
  double t = Now();
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "warning: `%s` failed\n", cmd.c_str());
  return Now() - t;
}

double RunPrefault(const std::string& path, int threads) {
  double t = Now();
  auto m = DefaultEnv()->MapReadOnly(path);
  if (!m) {
    std::fprintf(stderr, "map: %s\n", m.error().ToString().c_str());
    std::exit(1);
  }
  auto r = agent::Prefault(DefaultEnv(), (*m)->bytes(), threads);
  if (!r) std::fprintf(stderr, "prefault: %s\n", r.error().ToString().c_str());
  return Now() - t;  // includes mmap and munmap: what the agent pays
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string file;
  uint64_t bytes = 2ull << 30;
  int reps = 3, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--file")) file = argv[i + 1];
    if (!std::strcmp(argv[i], "--bytes")) bytes = std::stoull(argv[i + 1]);
    if (!std::strcmp(argv[i], "--reps")) reps = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
  }
  std::string tmp;
  if (file.empty()) {
    const char* base = std::getenv("TMPDIR");
    tmp = std::string(base ? base : "/tmp") + "/prefault-bench-" + std::to_string(::getpid());
    WriteRequest req{tmp, "bench", "v1", GenerateSource{bytes, 1, 1024}, false};
    auto w = WriteVersion(DefaultEnv(), req);
    if (!w) {
      std::fprintf(stderr, "write: %s\n", w.error().ToString().c_str());
      return 1;
    }
    file = w->path;
  }
  uint64_t size = std::filesystem::file_size(file);
  std::printf("file %s (%.2f GiB), %d reps, prefault threads %d\n", file.c_str(),
              static_cast<double>(size) / (1 << 30), reps, threads);
  struct Method {
    const char* name;
    std::function<double()> run;
  };
  std::vector<Method> methods = {
      {"modelswap", [&] { return RunPrefault(file, threads); }},
      {"vmtouch -t", [&] { return RunShell("vmtouch -qt '" + file + "'"); }},
      {"cat >/dev/null", [&] { return RunShell("cat '" + file + "' >/dev/null"); }},
  };
  for (const char* state : {"cold", "warm"}) {
    std::vector<double> med;
    for (auto& m : methods) {
      std::vector<double> t;
      for (int r = 0; r < reps; ++r) {
        if (!std::strcmp(state, "cold"))
          Evict(file);
        else
          RunShell("cat '" + file + "' >/dev/null");
        t.push_back(m.run());
      }
      med.push_back(Median(t));
      std::printf("%-5s %-15s %8.3f s  %6.2f GB/s\n", state, m.name, med.back(),
                  static_cast<double>(size) / med.back() / 1e9);
    }
    std::printf("%-5s ratio modelswap/vmtouch = %.2fx, modelswap/cat = %.2fx\n", state,
                med[0] / med[1], med[0] / med[2]);
  }
  // Check that the prefault really mapped every page: touching them afterwards must not fault.
  {
    auto m = DefaultEnv()->MapReadOnly(file);
    (void)agent::Prefault(DefaultEnv(), (*m)->bytes(), threads);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    const volatile std::byte* p = (*m)->bytes().data();
    uint64_t sum = 0;
    for (uint64_t off = 0; off < (*m)->bytes().size(); off += 4096)
      sum += static_cast<uint8_t>(p[off]);
    getrusage(RUSAGE_SELF, &after);
    std::printf("page faults touching all %zu pages after prefault: %ld (checksum %lu)\n",
                (*m)->bytes().size() / 4096,
                after.ru_minflt - before.ru_minflt + after.ru_majflt - before.ru_majflt,
                static_cast<unsigned long>(sum & 0xff));
  }
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return 0;
}
