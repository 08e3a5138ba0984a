// Model-file benchmarks, each beside its baseline in the same run:
//   checksum:  XXH3 (dispatched)  vs memcpy of the same buffer          target >= 0.9x memcpy
//   lookup:    msf::Reader::Find  vs std::unordered_map, same 10^7 keys   target <= 1.2x map
// Ends with a table of ratios. Flags: --entries=N (default 10^7), --buffer-mib=N (default 1024),
// plus Google Benchmark's own (--benchmark_filter=...). Run: build/bench/msf/msf_bench
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/checksum.h"
#include "sidecar/msf/builder.h"
#include "sidecar/volume/version_file.h"

namespace modelswap {
namespace {

uint64_t g_entries = 10'000'000;
size_t g_buffer_bytes = size_t{1} << 30;
std::map<std::string, double> g_results;  // benchmark name -> seconds per iteration

std::vector<std::byte>& Buffer() {
  static std::vector<std::byte> buf = [] {
    std::vector<std::byte> b(g_buffer_bytes);
    std::mt19937_64 rng(1);
    for (size_t i = 0; i < b.size(); i += 8) {
      uint64_t r = rng();
      std::memcpy(b.data() + i, &r, 8);
    }
    return b;
  }();
  return buf;
}

void BM_Checksum(benchmark::State& state) {
  auto& buf = Buffer();
  for (auto _ : state)
    benchmark::DoNotOptimize(Xxh3(buf));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
  state.SetLabel(std::string(ChecksumVariant()));
}
void BM_Memcpy(benchmark::State& state) {
  auto& buf = Buffer();
  std::vector<std::byte> dst(buf.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), buf.data(), buf.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}

std::string ValueOf(uint64_t k) {
  return "value-" + std::to_string(k * 2654435761u);
}

struct LookupData {
  std::string path;
  std::unique_ptr<OpenedModelFile> file;
  std::unordered_map<std::string, std::string> map;
  std::vector<std::string> queries;  // random existing keys
};

LookupData& Data() {
  static LookupData d = [] {
    LookupData d;
    d.path = "/tmp/modelswap-bench-" + std::to_string(::getpid()) + ".msf";
    auto fd = DefaultEnv()->Open(d.path, OpenMode::kReadWriteNew);
    msf::Builder builder(DefaultEnv(), *fd, msf::BuildOptions{.model = "bench", .version = "v1"});
    d.map.reserve(g_entries);
    for (uint64_t k = 0; k < g_entries; ++k) {
      std::string key = std::to_string(k);
      (void)builder.Add(key, ValueOf(k));
      d.map.emplace(std::move(key), ValueOf(k));
    }
    (void)builder.Finish();
    DefaultEnv()->Close(*fd);
    auto opened = OpenModelFile(DefaultEnv(), d.path, msf::VerifyLevel::kFull);
    if (!opened) std::abort();
    d.file = std::make_unique<OpenedModelFile>(std::move(*opened));
    ::unlink(d.path.c_str());  // the mapping keeps it alive
    std::mt19937_64 rng(7);
    for (int i = 0; i < (1 << 20); ++i)
      d.queries.push_back(std::to_string(rng() % g_entries));
    return d;
  }();
  return d;
}

void BM_LookupMsf(benchmark::State& state) {
  auto& d = Data();
  size_t i = 0;
  for (auto _ : state) {
    auto v = d.file->reader.Find(std::string_view(d.queries[i++ & (d.queries.size() - 1)]));
    benchmark::DoNotOptimize(v->data());
  }
}
void BM_LookupUnorderedMap(benchmark::State& state) {
  auto& d = Data();
  size_t i = 0;
  for (auto _ : state) {
    auto it = d.map.find(d.queries[i++ & (d.queries.size() - 1)]);
    benchmark::DoNotOptimize(it->second.data());
  }
}

BENCHMARK(BM_Checksum)->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(BM_LookupMsf)->MinTime(3);
BENCHMARK(BM_LookupUnorderedMap)->MinTime(3);

// Keeps each run's time per iteration so main() can print the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      g_results[r.benchmark_name()] =
          r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

void PrintRatios() {
  auto get = [](const char* name) { return g_results.count(name) ? g_results[name] : 0.0; };
  double sum = get("BM_Checksum/min_time:2.000"), copy = get("BM_Memcpy/min_time:2.000");
  double msf = get("BM_LookupMsf/min_time:3.000"),
         map = get("BM_LookupUnorderedMap/min_time:3.000");
  std::printf("\nsummary (same machine, same run)\n");
  if (sum > 0 && copy > 0) {
    double gb = static_cast<double>(g_buffer_bytes) / 1e9;
    std::printf("  checksum %.2f GB/s vs memcpy %.2f GB/s: ratio %.2fx (target >= 0.9x)\n",
                gb / sum, gb / copy, copy / sum);
  }
  if (msf > 0 && map > 0) {
    std::printf(
        "  lookup msf %.1f ns vs unordered_map %.1f ns (%llu keys): ratio %.2fx (target <= 1.2x)\n",
        msf * 1e9, map * 1e9, static_cast<unsigned long long>(g_entries), msf / map);
  }
}

}  // namespace
}  // namespace modelswap

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.starts_with("--entries="))
      modelswap::g_entries = std::stoull(a.substr(10));
    else if (a.starts_with("--buffer-mib="))
      modelswap::g_buffer_bytes = std::stoull(a.substr(13)) << 20;
    else
      rest.push_back(argv[i]);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  modelswap::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  modelswap::PrintRatios();
  return 0;
}
