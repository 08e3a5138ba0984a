// channel_peer: the C++ end of the multi-process channel tests (and of the Python interop tests).
//
//   channel_peer write  --shm D --name N --bytes B --slots S (--count C | --forever) [--stop]
//                       [--ack A --window W]
//   channel_peer crash  --shm D --name N --bytes B --slots S --count C
//   channel_peer flood  --shm D --name N --bytes B --slots S
//   channel_peer read   --shm D --name N --bytes B [--start oldest] [--until SEQ] [--stall-every K]
//                       [--ack A]
//   channel_peer layout
//
// write publishes self-checking messages (payload.h) of B bytes, then with --stop a stop message
// (8 bytes, StopWord(seq)). crash publishes C messages, then starts message C+1 by hand (odd
// version, half the payload) and SIGKILLs itself: a writer dying mid-write, deterministically.
// read prints "ready <next_seq>" once attached, then reads until it has returned seq >= SEQ or
// a stop message, checking every payload and that seq == previous + 1 + missed, and prints one
// JSON line of counts. With --stall-every K it waits after every K-th message until the writer
// is 2N messages ahead, so it loses messages for certain. With --ack the reader publishes its
// progress on channel A every 64 messages and the writer stays within W messages of it: a
// lossless, flow-controlled pipeline built from two channels, so a test can check every one of
// a million messages. flood is the fastest writer the protocol allows: it publishes the seq-0
// payload into every slot once, then publishes again and again by rewriting only the slot's
// version and length and published_seq (the payload bytes would not change), ~100 times faster
// than any reader copies a large message. Exit codes: 0 ok, 2 torn message, 3 accounting error,
// 4 the file was truncated under the reader (kFileDamaged, printed as JSON), 1 usage/open error.
// Every mode arms alarm(120) so it always ends.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sidecar/client/channel/channel.h"
#include "tests/sidecar/client/channel/payload.h"

namespace modelswap::channel_test {
namespace {

constexpr uint64_t kStopIndex = ~0ULL;

struct Args {
  std::string mode, shm, name, start = "next", ack;
  uint32_t bytes = 64, slots = 16;
  uint64_t count = 0, until = 0, stall_every = 0, window = 0;
  bool forever = false, stop = false;
};

bool Parse(int argc, char** argv, Args* a) {
  if (argc < 2) return false;
  a->mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string f = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (f == "--shm")
      a->shm = next();
    else if (f == "--name")
      a->name = next();
    else if (f == "--start")
      a->start = next();
    else if (f == "--bytes")
      a->bytes = static_cast<uint32_t>(std::strtoul(next(), nullptr, 10));
    else if (f == "--slots")
      a->slots = static_cast<uint32_t>(std::strtoul(next(), nullptr, 10));
    else if (f == "--count")
      a->count = std::strtoull(next(), nullptr, 10);
    else if (f == "--until")
      a->until = std::strtoull(next(), nullptr, 10);
    else if (f == "--stall-every")
      a->stall_every = std::strtoull(next(), nullptr, 10);
    else if (f == "--ack")
      a->ack = next();
    else if (f == "--window")
      a->window = std::strtoull(next(), nullptr, 10);
    else if (f == "--forever")
      a->forever = true;
    else if (f == "--stop")
      a->stop = true;
    else
      return false;
  }
  return true;
}

int Write(const Args& a) {
  auto writer =
      ChannelWriter::Open(a.shm, a.name, {.slot_count = a.slots, .message_bytes = a.bytes});
  if (!writer) {
    std::fprintf(stderr, "open writer: %s\n", writer.error().ToString().c_str());
    return 1;
  }
  std::vector<std::byte> msg(a.bytes);
  const uint64_t first = writer->last_published() + 1;
  Result<ChannelReader> acks = Fail(Code::kNotFound, "no --ack");
  if (!a.ack.empty()) acks = ChannelReader::Open(a.shm, a.ack, 8, StartAt::kOldestAvailable);
  uint64_t acked = 0;
  for (uint64_t n = 0; a.forever || n < a.count; ++n) {
    // Flow control for lossless tests (the channel itself never waits): stay within `window`
    // messages of what the reader acknowledged on its own channel.
    while (acks && writer->last_published() + 1 > acked + a.window) {
      uint64_t v = 0;
      if (acks->ReadLatest(std::as_writable_bytes(std::span(&v, 1))).status ==
          ReadStatus::kMessage) {
        acked = v;
      }
      ::sched_yield();
    }
    FillPayload(writer->last_published() + 1, msg);
    if (writer->Publish(msg) == 0) return 1;
  }
  if (a.stop) {
    std::byte stop[8];
    FillPayload(0, stop);  // overwritten below with the stop word
    const uint64_t w = Mix(writer->last_published() + 1, kStopIndex);
    std::memcpy(stop, &w, 8);
    if (writer->Publish(stop) == 0) return 1;
  }
  std::printf("{\"first\": %llu, \"last\": %llu, \"abandoned\": %u}\n",
              static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(writer->last_published()), writer->abandoned_slots());
  return 0;
}

// Publishes count messages, then does what Publish does for the next one only halfway.
int Crash(const Args& a) {
  auto writer =
      ChannelWriter::Open(a.shm, a.name, {.slot_count = a.slots, .message_bytes = a.bytes});
  if (!writer) return 1;
  std::vector<std::byte> msg(a.bytes);
  for (uint64_t n = 0; n < a.count; ++n) {
    FillPayload(writer->last_published() + 1, msg);
    if (writer->Publish(msg) == 0) return 1;
  }
  const uint64_t seq = writer->last_published() + 1;
  // pwrite through a second descriptor: on tmpfs the page cache is the file, so every mapping
  // sees these bytes at once, exactly as if Publish had stopped after half its payload copy.
  const int fd = ::open(writer->path().c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return 1;
  const off_t slot_off =
      MS_CHANNEL_HEADER_BYTES +
      static_cast<off_t>((seq & (a.slots - 1)) * ms_channel_slot_stride(a.bytes));
  const uint64_t odd = 2 * seq - 1;
  std::vector<std::byte> garbage(a.bytes / 2, std::byte{0xA5});
  if (::pwrite(fd, &odd, 8, slot_off) != 8 ||
      ::pwrite(fd, garbage.data(), garbage.size(), slot_off + MS_CHANNEL_SLOT_HEADER_BYTES) !=
          static_cast<ssize_t>(garbage.size())) {
    return 1;
  }
  std::printf("{\"last\": %llu}\n", static_cast<unsigned long long>(seq - 1));
  std::fflush(stdout);
  ::raise(SIGKILL);
  return 1;
}

int Flood(const Args& a) {
  auto writer =
      ChannelWriter::Open(a.shm, a.name, {.slot_count = a.slots, .message_bytes = a.bytes});
  if (!writer) return 1;  // holds the flock: no other writer while this one floods
  std::vector<std::byte> msg(a.bytes);
  FillPayload(0, msg);
  for (uint32_t i = 0; i < a.slots; ++i) {
    if (writer->Publish(msg) == 0) return 1;
  }
  const int fd = ::open(writer->path().c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return 1;
  const size_t bytes = MS_CHANNEL_HEADER_BYTES + size_t{a.slots} * ms_channel_slot_stride(a.bytes);
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return 1;
  auto* base = static_cast<std::byte*>(m);
  auto* header = reinterpret_cast<ms_channel_header*>(base);
  // Publish's stores and orders (channel.cc), minus the payload copy; ends by alarm(120) or kill.
  for (uint64_t seq = writer->last_published() + 1;; ++seq) {
    std::byte* slot =
        base + MS_CHANNEL_HEADER_BYTES + (seq & (a.slots - 1)) * ms_channel_slot_stride(a.bytes);
    std::atomic_ref<uint64_t> version(*reinterpret_cast<uint64_t*>(slot));
    version.store(2 * seq - 1, std::memory_order_relaxed);  // as Publish: ordered by the fence
    std::atomic_thread_fence(std::memory_order_release);
    std::atomic_ref<uint32_t>(
        *reinterpret_cast<uint32_t*>(slot + offsetof(ms_channel_slot_header, length)))
        .store(a.bytes, std::memory_order_relaxed);
    version.store(2 * seq, std::memory_order_release);  // pairs with the reader's v1 acquire
    std::atomic_ref<uint64_t>(header->published_seq).store(seq, std::memory_order_release);
  }
}

bool IsStop(uint64_t seq, std::span<const std::byte> m) {
  const uint64_t w = Mix(seq, kStopIndex);
  return m.size() == 8 && std::memcmp(m.data(), &w, 8) == 0;
}

int Read(const Args& a) {
  auto reader = ChannelReader::Open(
      a.shm, a.name, a.bytes,
      a.start == "oldest" ? StartAt::kOldestAvailable : StartAt::kNextPublished);
  if (!reader) {
    std::fprintf(stderr, "open reader: %s\n", reader.error().ToString().c_str());
    return 1;
  }
  Result<ChannelWriter> acks = Fail(Code::kNotFound, "no --ack");
  if (!a.ack.empty())
    acks = ChannelWriter::Open(a.shm, a.ack, {.slot_count = 1, .message_bytes = 8});
  auto ack = [&acks](uint64_t seq) {
    if (acks) (void)acks->Publish(std::as_bytes(std::span(&seq, 1)));
  };
  const uint64_t start = reader->next_seq();
  ack(start - 1);
  std::printf("ready %llu\n", static_cast<unsigned long long>(start));
  std::fflush(stdout);
  std::vector<std::byte> buf(a.bytes);
  uint64_t prev = start - 1, received = 0, stalls = 0, idle = 0;
  for (;;) {
    const ReadResult r = reader->ReadNext(buf);
    if (r.status == ReadStatus::kFileDamaged) {  // truncated under us: reported, survived
      std::printf("{\"damaged\": true, \"received\": %llu}\n",
                  static_cast<unsigned long long>(received));
      return 4;
    }
    if (r.status != ReadStatus::kMessage) {
      if (++idle % 64 == 0) ::sched_yield();  // share the 2 cores with the writer
      continue;
    }
    const std::span<const std::byte> m(buf.data(), r.length);
    const bool stop = IsStop(r.seq, m);
    if (!stop && (r.length != a.bytes || !CheckPayload(r.seq, m))) {
      std::fprintf(stderr, "torn or wrong message seq=%llu length=%u\n",
                   static_cast<unsigned long long>(r.seq), r.length);
      return 2;
    }
    if (r.seq != prev + 1 + r.missed) {
      std::fprintf(stderr, "accounting: seq=%llu prev=%llu missed=%llu\n",
                   static_cast<unsigned long long>(r.seq), static_cast<unsigned long long>(prev),
                   static_cast<unsigned long long>(r.missed));
      return 3;
    }
    prev = r.seq;
    ++received;
    if (received % 64 == 0) ack(prev);
    if (stop || (a.until != 0 && r.seq >= a.until)) break;
    const uint64_t ahead = r.seq + 2ULL * a.slots;
    if (a.stall_every != 0 && received % a.stall_every == 0 && ahead <= a.until) {
      ++stalls;
      while (reader->published_seq() < ahead)
        ::sched_yield();
    }
  }
  if (received + reader->total_missed() != prev - start + 1) return 3;
  std::printf(
      "{\"start\": %llu, \"last\": %llu, \"received\": %llu, \"missed\": %llu, \"torn_retries\": "
      "%llu, \"stalls\": %llu}\n",
      static_cast<unsigned long long>(start), static_cast<unsigned long long>(prev),
      static_cast<unsigned long long>(received),
      static_cast<unsigned long long>(reader->total_missed()),
      static_cast<unsigned long long>(reader->torn_retries()),
      static_cast<unsigned long long>(stalls));
  return 0;
}

int Layout() {
  std::printf(
      "{\"magic\": %llu, \"layout_version\": %u, \"header_bytes\": %u, \"slot_header_bytes\": %u, "
      "\"published_seq\": %zu, \"writer_epoch\": %zu, \"slot_count\": %zu, \"message_bytes\": %zu, "
      "\"slot_stride\": %zu, \"file_bytes\": %zu, \"created_unix_ns\": %zu, \"slot_length\": %zu, "
      "\"stride_1\": %u, \"stride_64\": %u, \"stride_3000\": %u, \"max_slots\": %u, "
      "\"max_message_bytes\": %u}\n",
      static_cast<unsigned long long>(MS_CHANNEL_MAGIC), MS_CHANNEL_LAYOUT_VERSION,
      MS_CHANNEL_HEADER_BYTES, MS_CHANNEL_SLOT_HEADER_BYTES,
      offsetof(ms_channel_header, published_seq), offsetof(ms_channel_header, writer_epoch),
      offsetof(ms_channel_header, slot_count), offsetof(ms_channel_header, message_bytes),
      offsetof(ms_channel_header, slot_stride), offsetof(ms_channel_header, file_bytes),
      offsetof(ms_channel_header, created_unix_ns), offsetof(ms_channel_slot_header, length),
      ms_channel_slot_stride(1), ms_channel_slot_stride(64), ms_channel_slot_stride(3000),
      MS_CHANNEL_MAX_SLOTS, MS_CHANNEL_MAX_MESSAGE_BYTES);
  return 0;
}

}  // namespace
}  // namespace modelswap::channel_test

int main(int argc, char** argv) {
  using namespace modelswap::channel_test;
  ::alarm(120);  // a peer never outlives a stuck test
  Args a;
  if (!Parse(argc, argv, &a)) {
    std::fprintf(stderr, "usage: channel_peer write|crash|read|layout [flags] (see source)\n");
    return 1;
  }
  if (a.mode == "write") return Write(a);
  if (a.mode == "crash") return Crash(a);
  if (a.mode == "flood") return Flood(a);
  if (a.mode == "read") return Read(a);
  if (a.mode == "layout") return Layout();
  std::fprintf(stderr, "unknown mode %s\n", a.mode.c_str());
  return 1;
}
