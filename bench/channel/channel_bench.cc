// channel_bench: modelswap channels against a pipe and a UNIX socket, in one run, on two cores.
//
//   channel_bench [--messages N] [--interval-ns NS] [--seconds S] [--cpus A,B]
//
// Prints one table. For each transport and message size (64 B, 3000 B):
//   - one-way latency, writer -> reader, in two processes pinned to cpus A and B: the writer
//     stamps the TSC into the message, the reader stamps it on arrival (p50 / p99 / p99.9 over
//     N messages sent every NS nanoseconds, so the reader is idle and waiting when each arrives;
//     the pipe and socket readers block in read(), as ordinary consumers do);
//   - reader throughput over S seconds, lossless: a pipe or socket writer blocks when the reader
//     lags; the channel writer (which never waits by itself) is given credit-based flow control,
//     the reader acknowledging every 64 messages on a second channel. The channel is also run
//     flooded (writer flat out), showing what the reader then gets and skips;
// and the cross-core cache-line round trip on the same two cpus (two threads ping-ponging one
// cache line), the floor for any shared-memory handoff. It is measured first and again right
// before each message size's channel latency run, because on a VM the host may move the two
// vcpus at any time (the round trip was seen to vary 185-255 ns, even within one run, on the
// development VM); each ratio uses the round trip measured next to it. Ratios per size:
// channel p50 / round trip, pipe p50 / channel p50, socket p50 / channel p50.
// Not a test: run it by hand on an otherwise idle machine (bench/ is never run by ctest).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/client/channel/channel.h"

namespace modelswap::bench {
namespace {

struct Config {
  uint64_t messages = 200'000;
  uint64_t interval_ns = 4'000;
  double seconds = 1.0;
  int cpu_writer = 0, cpu_reader = 1;
};

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) std::perror("sched_setaffinity");
}

double g_ns_per_tick = 1.0;

void CalibrateTsc() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t c0 = __rdtsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const uint64_t c1 = __rdtsc();
  const auto t1 = std::chrono::steady_clock::now();
  g_ns_per_tick = std::chrono::duration<double, std::nano>(t1 - t0).count() / double(c1 - c0);
}

inline double TicksToNs(int64_t ticks) {
  return double(ticks) * g_ns_per_tick;
}
// rdtsc alone is not ordered: it can execute before the loads ahead of it complete (a spin loop
// whose exit is predicted then reads the clock early; that once made a ~200 ns round trip look
// like 23 ns). lfence on both sides pins the reading between the instructions around it.
inline uint64_t Tsc() {
  _mm_lfence();
  const uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}
inline void SpinUntil(uint64_t tsc) {
  while (__rdtsc() < tsc)
    _mm_pause();
}

// Memory shared with the forked child: latency samples, counters, a stop flag.
struct Shared {
  // Set by the reader when its measurement is over; the writer polls it. Release/acquire: the
  // writer needs no data from the reader, but the pairing keeps the handoff explicit.
  std::atomic<uint64_t> stop{0};
  // Plain fields: the child writes them before it exits and the parent reads them after
  // waitpid(), which orders the two.
  uint64_t received = 0, missed = 0;
  double elapsed_s = 0;
  // Latency samples follow the struct: as many as MapShared was asked for.
  int64_t* samples() { return reinterpret_cast<int64_t*>(this + 1); }
};

Shared* MapShared(uint64_t samples) {
  void* p = ::mmap(nullptr, sizeof(Shared) + samples * 8, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return new (p) Shared();
}

struct Row {
  std::string name;
  double p50 = 0, p99 = 0, p999 = 0;
  double rate = 0;        // messages/s the reader got, lossless
  double flood_rate = 0;  // channel only: messages/s the reader got while the writer flooded
  double skipped = 0;     // channel only: fraction of the flood the reader skipped
};

void Percentiles(Shared* s, uint64_t n, Row* row) {
  std::vector<int64_t> v(s->samples(), s->samples() + n);
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return TicksToNs(v[std::min<uint64_t>(n - 1, uint64_t(q * n))]); };
  row->p50 = at(0.50);
  row->p99 = at(0.99);
  row->p999 = at(0.999);
}

// Runs reader(shared) in a child pinned to the reader cpu and writer(shared) here.
template <class R, class W>
void RunPair(const Config& cfg, Shared* s, R reader, W writer) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    Pin(cfg.cpu_reader);
    reader(s);
    ::_exit(0);
  }
  Pin(cfg.cpu_writer);
  writer(s);
  ::waitpid(pid, nullptr, 0);
}

// ---------------------------------------------------------------- cache-line round trip
double RoundTripNs(const Config& cfg) {
  alignas(128) static std::atomic<uint64_t> line{0};
  constexpr uint64_t kRounds = 200'000;
  std::vector<int64_t> rtt(kRounds);
  std::thread pong([&] {
    Pin(cfg.cpu_reader);
    for (uint64_t i = 1; i < 2 * kRounds; i += 2) {
      // acquire/release: the two threads hand the line back and forth like a message would.
      while (line.load(std::memory_order_acquire) != i)
        _mm_pause();
      line.store(i + 1, std::memory_order_release);
    }
  });
  Pin(cfg.cpu_writer);
  for (uint64_t r = 0; r < kRounds; ++r) {
    const uint64_t t0 = Tsc();
    line.store(2 * r + 1, std::memory_order_release);
    while (line.load(std::memory_order_acquire) != 2 * r + 2)
      _mm_pause();
    rtt[r] = int64_t(Tsc() - t0);
  }
  pong.join();
  std::sort(rtt.begin() + kRounds / 10, rtt.end());  // drop warm-up
  return TicksToNs(rtt[kRounds / 10 + (kRounds - kRounds / 10) / 2]);
}

// ---------------------------------------------------------------- channel
Row ChannelLatency(const Config& cfg, const std::string& dir, uint32_t bytes) {
  const std::string name = "lat" + std::to_string(bytes);
  Shared* s = MapShared(cfg.messages);
  auto writer = ChannelWriter::Open(dir, name, {.slot_count = 16, .message_bytes = bytes});
  if (!writer) std::abort();
  const uint64_t target = writer->last_published() + cfg.messages;
  int ready[2];
  if (::pipe(ready) != 0) std::abort();
  RunPair(
      cfg, s,
      [&](Shared* sh) {
        auto reader = ChannelReader::Open(dir, name, bytes).value();
        std::vector<std::byte> buf(bytes);
        (void)!::write(ready[1], "r", 1);
        // The writer publishes ids first..target; a preempted reader may skip some (counted).
        uint64_t n = 0;
        for (uint64_t seq = 0; seq < target;) {
          const ReadResult r = reader.ReadNext(buf);
          if (r.status != ReadStatus::kMessage) continue;
          const uint64_t now = Tsc();
          uint64_t sent;
          std::memcpy(&sent, buf.data(), 8);
          sh->samples()[n++] = int64_t(now - sent);
          sh->missed += r.missed;
          seq = r.seq;
        }
        sh->received = n;
      },
      [&](Shared*) {
        char c;
        (void)!::read(ready[0], &c, 1);
        std::vector<std::byte> msg(bytes, std::byte{1});
        const uint64_t gap = uint64_t(double(cfg.interval_ns) / g_ns_per_tick);
        for (uint64_t n = 0; n < cfg.messages; ++n) {
          const uint64_t t = Tsc();
          std::memcpy(msg.data(), &t, 8);
          (void)writer->Publish(msg);
          SpinUntil(t + gap);
        }
      });
  ::close(ready[0]);
  ::close(ready[1]);
  Row row{.name = "channel"};
  Percentiles(s, s->received, &row);
  return row;
}

// Reader throughput. With credit (the fair comparison with a pipe, which is lossless): the reader
// acknowledges its position on a second channel every 64 messages and the writer stays within
// 512 of it, so nothing is lost. Without: the writer floods and the reader takes what it can.
void ChannelThroughput(const Config& cfg, const std::string& dir, uint32_t bytes, bool credit,
                       Row* row) {
  const std::string name = (credit ? "credit" : "flood") + std::to_string(bytes);
  Shared* s = MapShared(1);
  auto writer = ChannelWriter::Open(dir, name, {.slot_count = 1024, .message_bytes = bytes});
  auto acks = ChannelWriter::Open(dir, name + "-ack", {.slot_count = 1, .message_bytes = 8});
  if (!writer || !acks) std::abort();
  // Attached before the fork, so the reader's cursor starts at the writer's first message.
  auto reader = ChannelReader::Open(dir, name, bytes).value();
  RunPair(
      cfg, s,
      [&](Shared* sh) {
        std::vector<std::byte> buf(bytes);
        uint64_t got = 0, missed = 0, last = 0;
        auto ack = [&] { (void)acks->Publish(std::as_bytes(std::span(&last, 1))); };
        ack();
        const auto t0 = std::chrono::steady_clock::now();
        const auto end = t0 + std::chrono::duration<double>(cfg.seconds);
        while (std::chrono::steady_clock::now() < end) {
          for (int i = 0; i < 256; ++i) {
            const ReadResult r = reader.ReadNext(buf);
            if (r.status != ReadStatus::kMessage) continue;
            ++got;
            missed += r.missed;
            last = r.seq;
            if (credit && got % 64 == 0) ack();
          }
        }
        sh->elapsed_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sh->received = got;
        sh->missed = missed;
        sh->stop.store(1, std::memory_order_release);  // pairs with the writer's acquire poll
      },
      [&](Shared* sh) {
        auto credits = ChannelReader::Open(dir, name + "-ack", 8).value();
        std::vector<std::byte> msg(bytes, std::byte{2});
        uint64_t acked = 0;
        while (sh->stop.load(std::memory_order_acquire) == 0) {
          for (int i = 0; i < 256; ++i) {
            if (credit && writer->last_published() >= acked + 512) {
              (void)credits.ReadLatest(std::as_writable_bytes(std::span(&acked, 1)));
              continue;
            }
            (void)writer->Publish(msg);
          }
        }
      });
  if (credit) {
    row->rate = double(s->received) / s->elapsed_s;
  } else {
    row->flood_rate = double(s->received) / s->elapsed_s;
    row->skipped = double(s->missed) / double(s->received + s->missed);
  }
}

// ---------------------------------------------------------------- pipe and UNIX socket
bool ReadFull(int fd, void* buf, size_t n) {
  for (size_t got = 0; got < n;) {
    const ssize_t r = ::read(fd, static_cast<char*>(buf) + got, n - got);
    if (r <= 0) return false;
    got += size_t(r);
  }
  return true;
}

bool WriteFull(int fd, const void* buf, size_t n) {
  for (size_t done = 0; done < n;) {
    const ssize_t r = ::write(fd, static_cast<const char*>(buf) + done, n - done);
    if (r <= 0) return false;
    done += size_t(r);
  }
  return true;
}

// fds[0] is read by the child, fds[1] written by the parent.
Row StreamLatency(const Config& cfg, const int fds[2], uint32_t bytes, const char* name) {
  // The kernel path is slow: space messages 20x further apart so none waits behind another.
  const uint64_t gap = uint64_t(double(cfg.interval_ns) * 20 / g_ns_per_tick);
  const uint64_t count = std::max<uint64_t>(cfg.messages / 20, 1000);
  Shared* s = MapShared(count);
  RunPair(
      cfg, s,
      [&](Shared* sh) {
        ::close(fds[1]);
        std::vector<char> buf(bytes);
        for (uint64_t n = 0; n < count && ReadFull(fds[0], buf.data(), bytes); ++n) {
          const uint64_t now = Tsc();
          uint64_t sent;
          std::memcpy(&sent, buf.data(), 8);
          sh->samples()[n] = int64_t(now - sent);
        }
      },
      [&](Shared*) {
        std::vector<char> msg(bytes, 3);
        for (uint64_t n = 0; n < count; ++n) {
          const uint64_t t = Tsc();
          std::memcpy(msg.data(), &t, 8);
          if (!WriteFull(fds[1], msg.data(), bytes)) break;
          SpinUntil(t + gap);
        }
      });
  Row row{.name = name};
  Percentiles(s, count, &row);
  return row;
}

void StreamThroughput(const Config& cfg, const int fds[2], uint32_t bytes, Row* row) {
  Shared* s = MapShared(1);
  RunPair(
      cfg, s,
      [&](Shared* sh) {
        ::close(fds[1]);
        std::vector<char> buf(bytes);
        uint64_t got = 0;
        if (!ReadFull(fds[0], buf.data(), bytes)) return;
        const auto t0 = std::chrono::steady_clock::now();
        const auto end = t0 + std::chrono::duration<double>(cfg.seconds);
        while (std::chrono::steady_clock::now() < end && ReadFull(fds[0], buf.data(), bytes))
          ++got;
        sh->elapsed_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sh->received = got;
        sh->stop.store(1, std::memory_order_release);
        while (ReadFull(fds[0], buf.data(), bytes)) {  // drain until the writer closes
        }
      },
      [&](Shared* sh) {
        std::vector<char> msg(bytes, 4);
        while (sh->stop.load(std::memory_order_acquire) == 0 &&
               WriteFull(fds[1], msg.data(), bytes)) {
        }
        ::close(fds[1]);
      });
  row->rate = double(s->received) / s->elapsed_s;
}

enum class Kind { kPipe, kSocket };

void MakeFds(Kind kind, int fds[2]) {
  if (kind == Kind::kPipe) {
    if (::pipe(fds) != 0) std::abort();
    return;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::abort();
  fds[0] = sv[0];
  fds[1] = sv[1];
}

Row Stream(const Config& cfg, Kind kind, uint32_t bytes) {
  const char* name = kind == Kind::kPipe ? "pipe" : "unix socket";
  int fds[2];
  MakeFds(kind, fds);
  Row row = StreamLatency(cfg, fds, bytes, name);
  ::close(fds[0]);
  MakeFds(kind, fds);
  StreamThroughput(cfg, fds, bytes, &row);
  ::close(fds[0]);
  return row;
}

void Print(uint32_t bytes, const Row& r) {
  std::printf("%-12s %6u B | %8.0f %8.0f %8.0f | %12.0f %9.1f", r.name.c_str(), bytes, r.p50, r.p99,
              r.p999, r.rate, r.rate * bytes / 1e6);
  if (r.name == "channel") {
    std::printf("   flooded: reader got %.0f msg/s, skipped %.0f%%", r.flood_rate, 100 * r.skipped);
  }
  std::printf("\n");
}

int Main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--messages")
      cfg.messages = std::strtoull(argv[i + 1], nullptr, 10);
    else if (f == "--interval-ns")
      cfg.interval_ns = std::strtoull(argv[i + 1], nullptr, 10);
    else if (f == "--seconds")
      cfg.seconds = std::atof(argv[i + 1]);
    else if (f == "--cpus")
      std::sscanf(argv[i + 1], "%d,%d", &cfg.cpu_writer, &cfg.cpu_reader);
    else
      return std::fprintf(stderr, "unknown flag %s (see the file comment)\n", f.c_str()), 1;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  ::signal(SIGPIPE, SIG_IGN);  // a reader that stops early must not kill the writer
  CalibrateTsc();
  const std::string dir = "/dev/shm/ms-chan-bench-" + std::to_string(::getpid());
  const double rtt = RoundTripNs(cfg);
  std::printf("cross-core cache-line round trip (cpu %d <-> cpu %d): p50 %.0f ns\n\n",
              cfg.cpu_writer, cfg.cpu_reader, rtt);
  std::printf("%-12s %8s | %8s %8s %8s | %12s %9s\n", "transport", "message", "p50 ns", "p99 ns",
              "p99.9 ns", "reader msg/s", "MB/s");
  for (uint32_t bytes : {64u, 3000u}) {
    const double rtt_now = RoundTripNs(cfg);
    Row chan = ChannelLatency(cfg, dir, bytes);
    ChannelThroughput(cfg, dir, bytes, /*credit=*/true, &chan);
    ChannelThroughput(cfg, dir, bytes, /*credit=*/false, &chan);
    Row pipe = Stream(cfg, Kind::kPipe, bytes);
    Row sock = Stream(cfg, Kind::kSocket, bytes);
    for (const Row* r : {&chan, &pipe, &sock})
      Print(bytes, *r);
    std::printf(
        "  ratios %u B: channel p50 / round trip %.2f (round trip %.0f ns just before; target <= "
        "2) | pipe p50 / channel p50 %.1f, socket p50 / channel p50 %.1f (target >= 20) | "
        "channel / pipe reader throughput %.1f\n",
        bytes, chan.p50 / rtt_now, rtt_now, pipe.p50 / chan.p50, sock.p50 / chan.p50,
        chan.rate / pipe.rate);
  }
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace modelswap::bench

int main(int argc, char** argv) {
  return modelswap::bench::Main(argc, argv);
}
