// client_bench: ModelClient::Acquire() + Handle::Get() per lookup, with no swaps and while the
// record is republished every millisecond (alternating two versions), against the baseline of
// msf::Reader::Find on the same file with no client at all. Google Benchmark; the ratio lines
// are printed at the end.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "common/checksum.h"
#include "sidecar/agent/control_block_writer.h"
#include "sidecar/client/model/client.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/writer.h"

namespace {

using namespace modelswap;

struct Setup {
  std::string dir = "/tmp/client-bench-" + std::to_string(::getpid());
  std::unique_ptr<agent::ControlBlockWriter> writer;
  std::vector<ctl::Record> records;
  std::unique_ptr<client::ModelClient> client;
  uint64_t entries = 0;

  Setup() {
    writer = std::move(*agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {dir + "/shm", "m"}));
    for (const char* v : {"v1", "v2"}) {
      auto w =
          WriteVersion(DefaultEnv(), {dir + "/root", "m", v, GenerateSource{64 << 20, 1, 256}});
      uint64_t sum = 0;
      ParseChecksum(w->checksum, &sum);
      records.push_back(
          ctl::Record{0, records.size() + 1, w->bytes, sum, MS_CTL_STATE_ACTIVE, 0, v, w->path});
      entries = w->entry_count;
    }
    writer->Publish(records[0]);
    client::Options o;
    o.shm_dir = dir + "/shm";
    client = std::move(*client::ModelClient::Attach("m", o));
  }
  ~Setup() { std::filesystem::remove_all(dir); }
};

Setup& S() {
  static Setup s;
  return s;
}

std::vector<std::string> Keys() {
  std::vector<std::string> keys;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 4096; ++i)
    keys.push_back(std::to_string(rng() % S().entries));
  return keys;
}

void BM_ReaderFindBaseline(benchmark::State& state) {
  auto f = OpenModelFile(DefaultEnv(), S().records[0].path, msf::VerifyLevel::kHeader);
  auto keys = Keys();
  size_t i = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(f->reader.Find(keys[i++ & 4095]));
}
BENCHMARK(BM_ReaderFindBaseline);

void BM_AcquireGet(benchmark::State& state) {
  auto keys = Keys();
  size_t i = 0;
  for (auto _ : state) {
    auto h = S().client->Acquire();
    benchmark::DoNotOptimize(h->Get(keys[i++ & 4095]));
  }
}
BENCHMARK(BM_AcquireGet);

void BM_AcquireGetDuringSwaps(benchmark::State& state) {
  std::atomic<bool> stop{false};
  uint64_t swaps = 0;
  std::thread swapper([&] {
    for (uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
      ctl::Record r = S().records[n & 1];
      r.generation = n + 3;  // strictly increasing, like the agent
      S().writer->Publish(r);
      ++swaps;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto keys = Keys();
  size_t i = 0;
  for (auto _ : state) {
    auto h = S().client->Acquire();
    benchmark::DoNotOptimize(h->Get(keys[i++ & 4095]));
  }
  stop = true;
  swapper.join();
  state.counters["swaps"] = static_cast<double>(swaps);
}
BENCHMARK(BM_AcquireGetDuringSwaps);

}  // namespace

// Console output plus the CPU time of each run, for the ratio lines (CPU time, not wall time:
// on a shared 2-core machine the wall time mostly measures the neighbours).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      cpu_ns[r.benchmark_name()] = r.GetAdjustedCPUTime();
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> cpu_ns;
};

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  S();
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  auto& t = reporter.cpu_ns;
  if (t.count("BM_ReaderFindBaseline") && t.count("BM_AcquireGet") &&
      t.count("BM_AcquireGetDuringSwaps")) {
    std::printf("ratio acquire+get / bare Find            = %.2fx (CPU time)\n",
                t["BM_AcquireGet"] / t["BM_ReaderFindBaseline"]);
    std::printf("ratio acquire+get during swaps / no swap = %.2fx (CPU time)\n",
                t["BM_AcquireGetDuringSwaps"] / t["BM_AcquireGet"]);
  }
  benchmark::Shutdown();
  return 0;
}
