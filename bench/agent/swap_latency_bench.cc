// swap_latency_bench: manifest replaced -> every reader process on the new version, p50/p99.
//
//   swap_latency_bench --sidecar PATH [--swaps N] [--readers R] [--poll-interval MS]
//                      [--fuse-opts attr_timeout=0,entry_timeout=0]
//
// Runs the real agent three times: "inotify" (root on a local filesystem, inotify wakes the
// agent), "poll" (same, with --no-inotify: the poll interval alone), and "poll+fuse" (the root
// seen through a bindfs FUSE mount while the manifests are written underneath it, so no event
// ever arrives and the FUSE attribute/entry caches add their staleness, as on blobfuse).
// R forked reader processes call Acquire() in a loop and stamp CLOCK_MONOTONIC into shared memory
// the first time they see each generation. A swap's latency is the time from just before the
// manifest's rename into place (after the temp file's fsync) to the last reader's stamp. Swaps are
// spaced by a random 20-60 ms so they do not phase-lock with the poll interval.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sched.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/names.h"
#include "sidecar/client/model/client.h"
#include "sidecar/client/model/control_block_access.h"
#include "sidecar/volume/manifest.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/writer.h"

namespace {

using namespace modelswap;

constexpr int kMaxGen = 4096;

struct Args {
  std::string sidecar;
  int swaps = 100, readers = 3, poll_ms = 100;
  std::string fuse_opts;  // e.g. attr_timeout=0,entry_timeout=0 to take the FUSE cache out
};

void ReaderLoop(const std::string& shm, int swaps, volatile uint64_t* seen) {
  client::Options o;
  o.shm_dir = shm;
  std::unique_ptr<client::ModelClient> c;
  while (!c) {
    auto a = client::ModelClient::Attach("m", o);
    if (a) c = std::move(*a);
  }
  uint64_t last = 0;
  while (last < static_cast<uint64_t>(swaps) + 1) {
    auto h = c->Acquire();
    if (h && h->generation() != last) {
      last = h->generation();
      if (last < kMaxGen) seen[last] = ctl::MonotonicNanos();
    }
    sched_yield();  // 2 cores shared with the agent: do not starve it
  }
  _exit(0);
}

void WriteManifestGen(const std::string& root, const std::string& v, uint64_t gen) {
  auto info = VerifyVersionFile(DefaultEnv(), root, "m", v);
  Manifest m{
      "m", v, "versions/" + v + ".msf", info->bytes, info->checksum, gen, "2025-01-01T00:00:00Z"};
  (void)WriteFileAtomic(DefaultEnv(), ManifestPath(root, "m"), EncodeManifest(m));
}

// Stamps the moment the manifest is renamed into place: readers can see it from then on.
class RenameStampEnv : public EnvWrapper {
 public:
  RenameStampEnv() : EnvWrapper(DefaultEnv()) {}
  Status Rename(const std::string& from, const std::string& to) override {
    renamed_at = ctl::MonotonicNanos();
    return target()->Rename(from, to);
  }
  uint64_t renamed_at = 0;
};

std::vector<double> write_ms;  // how long each manifest write (fsync, rename, fsync dir) took

enum Mode { kInotify, kPollLocal, kPollFuse };
const char* kModeNames[] = {"inotify", "poll", "poll+fuse"};

std::vector<double> RunMode(const Args& a, const std::string& dir, Mode mode) {
  bool polling = mode == kPollFuse;
  write_ms.clear();
  std::string root = dir + "/root", shm = dir + "/shm-" + kModeNames[mode];
  std::string agent_root = root;
  std::filesystem::create_directories(shm);
  // A fresh agent and shm-dir per mode: start again from v0 at generation 1.
  WriteManifestGen(root, "v0", 1);
  if (polling) {
    agent_root = dir + "/mnt";
    std::filesystem::create_directories(agent_root);
    std::string opts = a.fuse_opts.empty() ? "" : " -o " + a.fuse_opts;
    if (std::system(("bindfs --no-allow-other" + opts + " " + root + " " + agent_root).c_str()) !=
        0) {
      std::fprintf(stderr, "bindfs failed: cannot measure the polling path\n");
      return {};
    }
  }
  auto* seen = static_cast<volatile uint64_t*>(::mmap(
      nullptr, a.readers * kMaxGen * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::vector<pid_t> pids;
  std::string poll = std::to_string(mode == kInotify ? 1000 : a.poll_ms);
  // The last execl argument: nullptr (the list ends early) unless polling locally.
  const char* inotify_flag = mode == kPollLocal ? "--no-inotify" : nullptr;
  pid_t agent = fork();
  if (agent == 0) {
    execl(a.sidecar.c_str(), a.sidecar.c_str(), "agent", "--root", agent_root.c_str(), "--models",
          "m", "--shm-dir", shm.c_str(), "--listen", "", "--poll-interval", poll.c_str(),
          "--heartbeat-interval", "100", "--reader-timeout", "5000", inotify_flag, nullptr);
    _exit(127);
  }
  for (int r = 0; r < a.readers; ++r) {
    pid_t p = fork();
    if (p == 0) ReaderLoop(shm, a.swaps, seen + r * kMaxGen);
    pids.push_back(p);
  }
  auto all_seen = [&](int gen) {
    for (int r = 0; r < a.readers; ++r) {
      if (seen[r * kMaxGen + gen] == 0) return false;
    }
    return true;
  };
  while (!all_seen(1))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::mt19937 rng(7);
  std::vector<double> lat;
  for (int g = 2; g <= a.swaps + 1; ++g) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 40));
    std::string v = "v" + std::to_string(g - 1);
    auto info = VerifyVersionFile(DefaultEnv(), root, "m", v);
    Manifest m{"m",
               v,
               "versions/" + v + ".msf",
               info->bytes,
               info->checksum,
               static_cast<uint64_t>(g),
               "2025-01-01T00:00:00Z"};
    std::string text = EncodeManifest(m);
    RenameStampEnv env;
    uint64_t start = ctl::MonotonicNanos();
    (void)WriteFileAtomic(&env, ManifestPath(root, "m"), text);
    write_ms.push_back(static_cast<double>(ctl::MonotonicNanos() - start) / 1e6);
    uint64_t t0 = env.renamed_at;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!all_seen(g) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    uint64_t last = 0;
    for (int r = 0; r < a.readers; ++r) {
      uint64_t s = seen[r * kMaxGen + g];
      last = std::max(last, s);
    }
    lat.push_back(last > t0 ? static_cast<double>(last - t0) / 1e6 : 1e9);
  }
  for (pid_t p : pids)
    waitpid(p, nullptr, 0);
  kill(agent, SIGTERM);
  waitpid(agent, nullptr, 0);
  if (polling) (void)!std::system(("fusermount -u " + agent_root).c_str());
  return lat;
}

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--sidecar")) a.sidecar = argv[i + 1];
    if (!std::strcmp(argv[i], "--swaps")) a.swaps = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--readers")) a.readers = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--poll-interval")) a.poll_ms = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--fuse-opts")) a.fuse_opts = argv[i + 1];
  }
  if (a.sidecar.empty() || a.swaps + 2 >= kMaxGen) {
    std::fprintf(stderr, "usage: swap_latency_bench --sidecar PATH [--swaps N<4000] ...\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  std::string dir = "/tmp/swap-bench-" + std::to_string(::getpid());
  for (int v = 0; v <= a.swaps; ++v) {
    WriteRequest req{dir + "/root", "m", "v" + std::to_string(v), GenerateSource{64 << 10, 1, 64}};
    if (!WriteVersion(DefaultEnv(), req)) return 1;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("%d swaps, %d reader processes, poll interval %d ms (polling mode)\n", a.swaps,
              a.readers, a.poll_ms);
  for (Mode mode : {kInotify, kPollLocal, kPollFuse}) {
    auto lat = RunMode(a, dir, mode);
    if (lat.empty()) continue;
    double target = mode == kInotify ? 5.0 : a.poll_ms + 5.0;
    std::printf(
        "%-8s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  target <= %.0f ms: p99/target = %.2fx\n",
        kModeNames[mode], Pct(lat, 0.5), Pct(lat, 0.99), Pct(lat, 1.0), target,
        Pct(lat, 0.99) / target);
    std::printf("%-8s (the manifest write itself, not included: p50 %.2f ms, p99 %.2f ms)\n",
                kModeNames[mode], Pct(write_ms, 0.5), Pct(write_ms, 0.99));
  }
  std::filesystem::remove_all(dir);
  return 0;
}
