// snapshot_bench: the snapshot host against its baselines, side by side in one run.
//
//   snapshot_bench [--dir DIR] [--shm DIR] [--mib N] [--reps R]
//
// DIR (default $TMPDIR or /tmp) is where snapshots and the raw-write baseline go, so both hit the
// same filesystem; --shm (default /dev/shm) holds the region. Prints:
//   1. snapshot of an N MiB region (default 256), all blocks dirty (a full snapshot) and 1% dirty
//      (a delta of the full one, as the host writes them), in MB/s of region, vs raw write + fsync
//      of N MiB on the same filesystem;
//   2. commit() cost: empty, 1 dirty 4 KiB block, 64 dirty blocks, vs memcpy of the same bytes;
//   3. restore of the newest snapshot (a full one and the 1% delta on it) vs reading the N MiB
//      full file into fresh memory (the read limit), with the page cache warm (the files were
//      just written) and cold (dropped with fadvise). The restore hashes on a second thread.
// Each figure is the best of R repetitions (default 3). Ratios are printed at the end.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "sidecar/client/region/region.h"
#include "sidecar/client/region/region_view.h"
#include "sidecar/snapshot/snapshot_format.h"
#include "sidecar/snapshot/snapshot_restore.h"
#include "sidecar/snapshot/snapshot_writer.h"

namespace modelswap {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kBlock = 4096;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void Die(const std::string& what) {
  std::fprintf(stderr, "snapshot_bench: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T OrDie(Result<T> r) {
  if (!r) Die(r.error().ToString());
  return std::move(*r);
}

struct Args {
  std::string dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  std::string shm = "/dev/shm";
  uint64_t mib = 256;
  int reps = 3;
};

// Fresh anonymous memory (page faults included, as a restore into new memory has them).
std::byte* FreshBuffer(size_t n) {
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) Die("mmap");
  return static_cast<std::byte*>(p);
}

double RawWriteSeconds(const std::string& path, const std::byte* data, size_t n) {
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("open " + path);
  for (size_t off = 0; off < n;) {
    const ssize_t w = ::pwrite(fd, data + off, std::min<size_t>(n - off, 16 << 20), off);
    if (w <= 0) Die("pwrite");
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) Die("fsync");
  ::close(fd);
  const auto t1 = Clock::now();
  ::unlink(path.c_str());
  return Seconds(t0, t1);
}

double ReadSeconds(const std::string& path, size_t n) {
  std::byte* buf = FreshBuffer(n);
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  for (size_t off = 0; off < n;) {
    const ssize_t r = ::pread(fd, buf + off, std::min<size_t>(n - off, 16 << 20), off + 4096);
    if (r <= 0) Die("pread");
    off += static_cast<size_t>(r);
  }
  ::close(fd);
  const double s = Seconds(t0, Clock::now());
  ::munmap(buf, n);
  return s;
}

void DropCache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Marks `fraction` of the blocks dirty with new random bytes and commits.
void Dirty(Region& r, double fraction, std::mt19937_64& rng) {
  const uint64_t blocks = r.size() / kBlock;
  const uint64_t n = std::max<uint64_t>(1, static_cast<uint64_t>(blocks * fraction));
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t b = fraction >= 1.0 ? i : rng() % blocks;
    (void)r.MarkDirty(b * kBlock, kBlock);
    auto* w = reinterpret_cast<uint64_t*>(r.bytes().data() + b * kBlock);
    for (size_t k = 0; k < kBlock / 8; ++k)
      w[k] = rng() | 1;
  }
  r.Commit();
}

// One snapshot of the pinned newest commit: full, or a delta of *base (as the host writes after
// its first full snapshot). Records the file in *last so the next delta can build on it.
double SnapshotSeconds(const std::string& snap_dir, snapshot::RegionView& view,
                       const snapshot::SnapshotWriteResult* base,
                       snapshot::SnapshotWriteResult* last) {
  const uint64_t pin = OrDie(view.Pin());
  const snapshot::DeltaBase delta{base ? base->generation : 0, base ? base->checksum : 0,
                                  view.region_bytes() / 2};
  const auto t0 = Clock::now();
  *last =
      OrDie(snapshot::WriteSnapshot(DefaultEnv(), snap_dir, view, pin, base ? &delta : nullptr));
  const double s = Seconds(t0, Clock::now());
  if ((base != nullptr) != (last->kind == snapshot::SnapshotKind::kDelta))
    Die("snapshot kind is not the one the benchmark meant to measure");
  view.PublishDurable(pin);
  return s;
}

template <class F>
double NanosPerOp(uint64_t iterations, F op) {
  const auto t0 = Clock::now();
  for (uint64_t i = 0; i < iterations; ++i)
    op(i);
  return Seconds(t0, Clock::now()) * 1e9 / static_cast<double>(iterations);
}

void CommitCosts(Region& r, double* empty, double* one, double* one_copy, double* many,
                 double* many_copy) {
  *empty = NanosPerOp(2'000'000, [&](uint64_t) { r.Commit(); });
  *one = NanosPerOp(1'000'000, [&](uint64_t i) {
    (void)r.MarkDirty((i % 1024) * kBlock, 8);
    r.Commit();
  });
  // Baselines copy the same bytes over the same 4 MiB footprint as the commits above (1024
  // blocks of the work image into 1024 blocks of a slot image), so cache behaviour matches.
  static std::vector<std::byte> src(1024 * kBlock, std::byte{1}), dst(1024 * kBlock);
  *one_copy = NanosPerOp(1'000'000, [&](uint64_t i) {
    std::memcpy(dst.data() + (i % 1024) * kBlock, src.data() + (i % 1024) * kBlock, kBlock);
    asm volatile("" ::: "memory");
  });
  *many = NanosPerOp(50'000, [&](uint64_t i) {
    (void)r.MarkDirty((i % 16) * 64 * kBlock, 64 * kBlock);
    r.Commit();
  });
  *many_copy = NanosPerOp(50'000, [&](uint64_t i) {
    std::memcpy(dst.data() + (i % 16) * 64 * kBlock, src.data() + (i % 16) * 64 * kBlock,
                64 * kBlock);
    asm volatile("" ::: "memory");
  });
}

int Run(const Args& a) {
  const uint64_t bytes = a.mib << 20;
  const std::string snaps = a.dir + "/modelswap-snapbench-" + std::to_string(::getpid());
  const std::string shm = a.shm + "/modelswap-snapbench-" + std::to_string(::getpid());
  const std::string snap_dir = snapshot::RegionSnapshotDir(snaps, "bench");
  std::filesystem::create_directories(snap_dir);
  std::mt19937_64 rng(1);
  Region r = OrDie(Region::Open(shm, "bench", {bytes, kBlock}));
  snapshot::RegionView view = OrDie(snapshot::RegionView::Open(shm, "bench"));
  Dirty(r, 1.0, rng);  // the whole region holds random data: no holes to help us

  double raw = 1e9, all = 1e9, one_pct = 1e9, restore_warm = 1e9, read_warm = 1e9,
         restore_cold = 1e9, read_cold = 1e9;
  snapshot::SnapshotWriteResult full, delta;
  for (int i = 0; i < a.reps; ++i) {
    raw = std::min(raw, RawWriteSeconds(snaps + "/raw", r.bytes().data(), bytes));
    Dirty(r, 1.0, rng);
    all = std::min(all, SnapshotSeconds(snap_dir, view, nullptr, &full));
    Dirty(r, 0.01, rng);
    one_pct = std::min(one_pct, SnapshotSeconds(snap_dir, view, &full, &delta));
  }
  const std::string file = full.path;  // the read baseline; the restore applies delta on it
  for (int i = 0; i < a.reps; ++i) {
    for (const bool cold : {false, true}) {
      if (cold) DropCache(file);
      const double rd = ReadSeconds(file, bytes);
      const std::string fresh = shm + "/restore" + std::to_string(i) + (cold ? "c" : "w");
      if (cold) {
        DropCache(file);
        DropCache(delta.path);
      }
      const auto t0 = Clock::now();
      OrDie(snapshot::RestoreRegion(DefaultEnv(), snaps, fresh, "bench"));
      const double rs = Seconds(t0, Clock::now());
      std::filesystem::remove_all(fresh);
      (cold ? read_cold : read_warm) = std::min(cold ? read_cold : read_warm, rd);
      (cold ? restore_cold : restore_warm) = std::min(cold ? restore_cold : restore_warm, rs);
    }
  }
  double empty = 0, one = 0, one_copy = 0, many = 0, many_copy = 0;
  CommitCosts(r, &empty, &one, &one_copy, &many, &many_copy);

  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("snapshot of a %llu MiB region (files in %s, region in %s), best of %d\n",
              static_cast<unsigned long long>(a.mib), a.dir.c_str(), a.shm.c_str(), a.reps);
  std::printf("  raw write+fsync          %8.1f ms %8.0f MB/s\n", raw * 1e3, mb / raw);
  std::printf("  snapshot, all dirty (full)%7.1f ms %8.0f MB/s  ratio %.2f\n", all * 1e3, mb / all,
              raw / all);
  std::printf("  snapshot, 1%% dirty (delta)%6.1f ms %8.0f MB/s  ratio %.2f\n", one_pct * 1e3,
              mb / one_pct, raw / one_pct);
  std::printf("commit() cost\n");
  std::printf("  empty commit             %8.1f ns\n", empty);
  std::printf("  1 dirty 4 KiB block      %8.1f ns  (memcpy 4 KiB %.1f ns; excess %.1f ns)\n", one,
              one_copy, one - one_copy);
  std::printf("  64 dirty blocks (256 KiB)%8.1f ns  (memcpy 256 KiB %.1f ns; ratio %.2f)\n", many,
              many_copy, many / many_copy);
  std::printf("restore of %llu MiB vs read into fresh memory\n",
              static_cast<unsigned long long>(a.mib));
  std::printf("  page cache warm: read %7.1f ms, restore %7.1f ms  ratio %.2f\n", read_warm * 1e3,
              restore_warm * 1e3, restore_warm / read_warm);
  std::printf("  page cache cold: read %7.1f ms, restore %7.1f ms  ratio %.2f\n", read_cold * 1e3,
              restore_cold * 1e3, restore_cold / read_cold);
  std::printf(
      "targets: snapshot >= 0.8x raw (%.2f, %.2f); commit fixed <= 100 ns (%.1f); "
      "restore <= 1.2x read (warm %.2f, cold %.2f)\n",
      raw / all, raw / one_pct, empty, restore_warm / read_warm, restore_cold / read_cold);
  std::filesystem::remove_all(snaps);
  std::filesystem::remove_all(shm);
  return 0;
}

}  // namespace
}  // namespace modelswap

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  modelswap::Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--dir")
      a.dir = v;
    else if (k == "--shm")
      a.shm = v;
    else if (k == "--mib")
      a.mib = std::stoull(v);
    else if (k == "--reps")
      a.reps = std::stoi(v);
    else
      modelswap::Die("unknown flag " + k);
  }
  if (a.mib == 0 || a.reps < 1) modelswap::Die("--mib and --reps must be positive");
  return modelswap::Run(a);
}
