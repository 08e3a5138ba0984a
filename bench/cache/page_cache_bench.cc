// page_cache_bench: page cache and process memory of N app processes reading one shared version
// file (what the node cache gives every pod on a node) beside N processes each reading its own
// copy (the per-pod stage dir), in one run. A documented CLI; never run by ctest.
//
//   build/bench/cache/page_cache_bench [--mib N] [--procs P] [--dir DIR]
//   (default 256 MiB, 20 processes; scratch in --dir, else $MODELSWAP_BENCH_DIR, else /tmp;
//   the baseline needs P x N MiB of disk and of page cache)
//
// The file is N MiB of PRNG bytes, fsynced; the page cache holds the same pages whatever the
// bytes are, so a plain file stands in for the assembled .msf. Its pages are dropped first
// (posix_fadvise DONTNEED after fsync), then P forked processes each map it read-only
// (MAP_SHARED, as agents and clients map versions) and read every page, and wait. With every
// process still mapped the parent measures:
//   - the file's pages in the page cache: mincore over a mapping of each file (exact),
//   - /proc/meminfo Cached, before and after (the whole machine: other work moves it),
//   - each process's Rss and Pss from /proc/PID/smaps_rollup.
// Shared: one file, every process maps it. Baseline: P copies in P stage dirs, process i maps
// copy i. Target: shared page cache <= 1.1x the file's size (the baseline is P x).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void WriteFile(const std::string& path, uint64_t bytes, uint64_t seed) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("open");
  std::vector<uint64_t> buf((1 << 20) / 8);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint64_t off = 0; off < bytes; off += 1 << 20) {
    for (auto& w : buf) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    if (::pwrite(fd, buf.data(), 1 << 20, static_cast<off_t>(off)) != (1 << 20)) Die("pwrite");
  }
  if (::fsync(fd) != 0) Die("fsync");
  ::close(fd);
}

// Drops the file's clean pages from the page cache.
void DropPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open");
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Bytes of the file in the page cache (mincore over a fresh mapping, which faults nothing in).
uint64_t CachedBytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open");
  off_t size = ::lseek(fd, 0, SEEK_END);
  void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) Die("mmap");
  const long page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> vec((static_cast<size_t>(size) + page - 1) / page);
  if (::mincore(p, static_cast<size_t>(size), vec.data()) != 0) Die("mincore");
  ::munmap(p, static_cast<size_t>(size));
  uint64_t n = 0;
  for (unsigned char v : vec)
    n += v & 1;
  return n * static_cast<uint64_t>(page);
}

// A field of /proc/meminfo or smaps_rollup, in bytes ("Cached:", "Rss:", "Pss:").
uint64_t KbField(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) == 0) {
      std::istringstream s(line.substr(name.size()));
      uint64_t kb = 0;
      s >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

struct Result {
  uint64_t page_cache = 0;    // mincore, summed over the files
  int64_t cached_delta = 0;   // /proc/meminfo Cached after - before
  uint64_t rss = 0, pss = 0;  // summed over the processes
  uint64_t max_rss = 0;
};

// P processes, process i maps files[i % files.size()] and reads it all, then waits.
Result Run(const std::vector<std::string>& files, int procs, uint64_t bytes) {
  for (const auto& f : files)
    DropPages(f);
  Result r;
  const int64_t cached_before = static_cast<int64_t>(KbField("/proc/meminfo", "Cached:"));
  int ready[2], go[2];
  if (::pipe(ready) != 0 || ::pipe(go) != 0) Die("pipe");
  std::vector<pid_t> pids;
  for (int i = 0; i < procs; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) Die("fork");
    if (pid == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      const std::string& path = files[static_cast<size_t>(i) % files.size()];
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) _exit(2);
      auto* p =
          static_cast<const unsigned char*>(::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0));
      if (p == MAP_FAILED) _exit(3);
      volatile uint64_t sum = 0;
      for (uint64_t off = 0; off < bytes; off += 4096)
        sum = sum + p[off];
      char c = 1;
      if (::write(ready[1], &c, 1) != 1) _exit(4);
      ::read(go[0], &c, 1);  // returns at EOF: the parent closed its end
      _exit(0);
    }
    pids.push_back(pid);
  }
  ::close(ready[1]);
  ::close(go[0]);
  for (int i = 0; i < procs; ++i) {
    char c;
    if (::read(ready[0], &c, 1) != 1) Die("child failed before reading");
  }
  r.cached_delta = static_cast<int64_t>(KbField("/proc/meminfo", "Cached:")) - cached_before;
  for (const auto& f : files)
    r.page_cache += CachedBytes(f);
  for (pid_t pid : pids) {
    const std::string rollup = "/proc/" + std::to_string(pid) + "/smaps_rollup";
    uint64_t rss = KbField(rollup, "Rss:");
    r.rss += rss;
    r.pss += KbField(rollup, "Pss:");
    r.max_rss = std::max(r.max_rss, rss);
  }
  ::close(go[1]);
  ::close(ready[0]);
  for (pid_t pid : pids) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "child %d failed\n", pid);
      std::exit(1);
    }
  }
  return r;
}

void Print(const char* what, const Result& r, uint64_t bytes) {
  const double f = static_cast<double>(bytes);
  std::printf(
      "%-28s page cache (mincore) %8.1f MiB = %6.2fx file | Cached delta %8.1f MiB = %6.2fx | "
      "Rss sum %8.1f MiB, Pss sum %8.1f MiB = %5.2fx file, max Rss %6.1f MiB\n",
      what, r.page_cache / 1048576.0, r.page_cache / f, r.cached_delta / 1048576.0,
      r.cached_delta / f, r.rss / 1048576.0, r.pss / 1048576.0, r.pss / f, r.max_rss / 1048576.0);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2)
    a[argv[i]] = argv[i + 1];
  const uint64_t mib = a.contains("--mib") ? std::stoull(a["--mib"]) : 256;
  const int procs = a.contains("--procs") ? std::stoi(a["--procs"]) : 20;
  const char* env_dir = std::getenv("MODELSWAP_BENCH_DIR");
  const std::string dir =
      (a.contains("--dir") ? a["--dir"] : std::string(env_dir ? env_dir : "/tmp")) +
      "/modelswap-page-cache-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const uint64_t bytes = mib << 20;

  const std::string shared = dir + "/cache/m-v1.msf";
  std::filesystem::create_directories(dir + "/cache");
  WriteFile(shared, bytes, 1);
  std::vector<std::string> copies;
  for (int i = 0; i < procs; ++i) {
    const std::string d = dir + "/stage-" + std::to_string(i);
    std::filesystem::create_directories(d);
    copies.push_back(d + "/m-v1.msf");
    std::filesystem::copy_file(shared, copies.back());
  }
  std::printf("file %llu MiB, %d processes, load average before: ",
              static_cast<unsigned long long>(mib), procs);
  std::ifstream la("/proc/loadavg");
  std::string l;
  std::getline(la, l);
  std::printf("%s\n", l.c_str());

  Result s = Run({shared}, procs, bytes);
  Print("shared (node cache)", s, bytes);
  Result c = Run(copies, procs, bytes);
  Print("per-pod copies (baseline)", c, bytes);
  std::printf("shared / baseline page cache: %.3fx   target: shared <= 1.1x file (%s)\n",
              static_cast<double>(s.page_cache) / static_cast<double>(c.page_cache),
              s.page_cache <= bytes * 11 / 10 ? "met" : "NOT met");
  for (const auto& f : copies)
    DropPages(f);
  DropPages(shared);
  std::filesystem::remove_all(dir);
  return 0;
}
