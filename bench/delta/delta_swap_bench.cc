// delta_swap_bench: the agent's load of a delta version of S bytes on a node that already holds its
// base, beside the load of a whole version of the same S bytes, in one run.
//
//   build/bench/delta/delta_swap_bench [--mib S] [--base-mib B] [--reps R]
//   (scratch in $MODELSWAP_BENCH_DIR, default /tmp; defaults S = 64, B = 512, R = 5)
//
// On one volume: v1, a full version of about B MiB (synthetic entries, 1 KiB values, written by
// the writer); d2, a delta on v1 of about S MiB upserting random keys of v1; w2, a full version
// holding exactly d2's entries (so the same entry count and, but for the header's delta fields,
// the same bytes). Each is published (PublishAnyVersion: d2's manifest carries its chain) and
// loaded with agent::LoadVersion (sidecar/agent/loader.h: map, prefault, full verification), as
// the agent does on a swap:
//   whole     LoadVersion(w2): the baseline
//   delta     LoadVersion(d2) with v1's loaded layer offered for sharing (the node holds v1):
//             only d2's layer should be mapped and verified (target: within 10 % of whole)
//   unshared  LoadVersion(d2) with nothing loaded: both layers (what sharing saves)
// Each R times, interleaved (the order flips every repetition), in two page-cache states: "warm"
// (the files as the writer left them, in the page cache) and "cold" (posix_fadvise DONTNEED on the
// new version's file before each load, so it is read from the disk; the base stays cached as a node
// holding it would). Medians are printed with the ratio delta / whole.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "sidecar/agent/loader.h"
#include "sidecar/msf/builder.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/publish.h"
#include "sidecar/writer/synthetic_data.h"
#include "sidecar/writer/writer.h"
#include "tests/testing/bench_support.h"

namespace modelswap {
namespace {

using bench::Must;
using bench::Seconds;

struct Args {
  uint64_t mib = 64, base_mib = 512;
  int reps = 5;
};

// Builds <root>/m/versions/<version>.msf from `keys` with new values (a delta on `base` if set).
void BuildVersion(const std::string& root, const std::string& version,
                  const std::vector<uint64_t>& keys, std::optional<msf::DeltaBase> base) {
  const std::string path = root + "/m/versions/" + version + ".msf";
  int fd = Must(DefaultEnv()->Open(path, OpenMode::kReadWriteNew), "open");
  msf::Builder b(DefaultEnv(), fd,
                 msf::BuildOptions{.model = "m", .version = version, .delta = std::move(base)});
  std::string value;
  for (uint64_t k : keys) {
    SyntheticValue("m", "d2", k, 2, 1024, &value);  // the same values in d2 and w2
    if (!b.Add(std::to_string(k), value)) std::exit(1);
  }
  Must(b.Finish(), "finish");
  if (!DefaultEnv()->Fsync(fd)) std::exit(1);
  DefaultEnv()->Close(fd);
}

void DropFromCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Loads m once; returns seconds, checks how many layers were loaded and shared.
double TimedLoad(const std::string& root, const Manifest& m,
                 const std::vector<std::shared_ptr<agent::LoadedVersion>>& loaded,
                 uint32_t want_loaded, bool cold) {
  if (cold) DropFromCache(root + "/m/" + m.file);
  double t0 = Seconds();
  auto v =
      Must(agent::LoadVersion(DefaultEnv(), root, m, agent::LoadOptions{}, {}, loaded), "load");
  double s = Seconds() - t0;
  if (v->layers_loaded != want_loaded) {
    std::fprintf(stderr, "load of %s mapped %u layers, expected %u\n", m.version.c_str(),
                 v->layers_loaded, want_loaded);
    std::exit(1);
  }
  return s;
}

int Main(const Args& a) {
  spdlog::set_level(spdlog::level::warn);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* scratch = std::getenv("MODELSWAP_BENCH_DIR");
  const std::string root = std::string(scratch ? scratch : "/tmp") +
                           "/modelswap-delta-swap-bench-" + std::to_string(::getpid());
  WriteRequest req;
  req.root = root;
  req.model = "m";
  req.version = "v1";
  req.source = GenerateSource{a.base_mib << 20, 1, 1024};
  WriteResult v1w = Must(WriteVersion(DefaultEnv(), req), "write v1");
  uint64_t v1_sum = 0;
  if (!ParseChecksum(v1w.checksum, &v1_sum)) return 1;
  // d2 and w2: the same random keys of v1, about S MiB of entries, in key order.
  const uint64_t n = std::min<uint64_t>((a.mib << 20) / 1040, v1w.entry_count);
  std::vector<uint64_t> keys(v1w.entry_count);
  for (uint64_t i = 0; i < keys.size(); ++i)
    keys[i] = i;
  std::mt19937_64 rng(5);
  std::shuffle(keys.begin(), keys.end(), rng);
  keys.resize(n);
  std::sort(keys.begin(), keys.end());
  BuildVersion(root, "d2", keys, msf::DeltaBase{"v1", v1_sum, 1});
  BuildVersion(root, "w2", keys, std::nullopt);
  Manifest m1 = Must(PublishAnyVersion(DefaultEnv(), root, "m", "v1"), "publish v1");
  Manifest md = Must(PublishAnyVersion(DefaultEnv(), root, "m", "d2"), "publish d2");
  Manifest mw = Must(PublishAnyVersion(DefaultEnv(), root, "m", "w2"), "publish w2");
  if (md.chain.size() != 1) {
    std::fprintf(stderr, "d2's manifest has %zu chain entries, expected 1\n", md.chain.size());
    return 1;
  }
  double t0 = Seconds();
  auto base = Must(agent::LoadVersion(DefaultEnv(), root, m1, agent::LoadOptions{}), "load v1");
  double base_s = Seconds() - t0;
  const std::vector<std::shared_ptr<agent::LoadedVersion>> held = agent::LayersOf(base);
  std::printf("v1 %llu bytes (loaded in %.3f s); d2 %llu bytes, w2 %llu bytes, %llu entries each\n",
              static_cast<unsigned long long>(m1.bytes), base_s,
              static_cast<unsigned long long>(md.bytes), static_cast<unsigned long long>(mw.bytes),
              static_cast<unsigned long long>(n));
  for (bool cold : {false, true}) {
    std::vector<double> whole, delta, unshared;
    for (int r = 0; r < a.reps; ++r) {
      // Odd repetitions go in the other order, so neither side always follows the other.
      if (r % 2 == 0) whole.push_back(TimedLoad(root, mw, {}, 1, cold));
      delta.push_back(TimedLoad(root, md, held, 1, cold));
      if (r % 2 == 1) whole.push_back(TimedLoad(root, mw, {}, 1, cold));
      unshared.push_back(TimedLoad(root, md, {}, 2, cold));
    }
    double w = Median(whole), d = Median(delta), u = Median(unshared);
    std::printf(
        "%s page cache, median of %d: whole %.2f ms, delta on held base %.2f ms, "
        "delta loading its base too %.2f ms\n",
        cold ? "cold" : "warm", a.reps, w * 1e3, d * 1e3, u * 1e3);
    std::printf("  delta / whole = %.3fx (target <= 1.10x); unshared / whole = %.2fx\n", d / w,
                u / w);
  }
  std::filesystem::remove_all(root);
  return 0;
}

}  // namespace
}  // namespace modelswap

int main(int argc, char** argv) {
  modelswap::Args a;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (i + 1 >= argc) flag = "";
    if (flag == "--mib") {
      a.mib = std::stoull(argv[i + 1]);
    } else if (flag == "--base-mib") {
      a.base_mib = std::stoull(argv[i + 1]);
    } else if (flag == "--reps") {
      a.reps = std::max(1, std::stoi(argv[i + 1]));
    } else {
      std::fprintf(stderr, "usage: delta_swap_bench [--mib S] [--base-mib B] [--reps R]\n");
      return 2;
    }
  }
  return modelswap::Main(a);
}
