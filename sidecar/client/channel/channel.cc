// The channel protocol: the writer's publish, the readers' seqlock reads and loss accounting, and
// the recovery a writer runs when it attaches to a channel a previous writer left behind. File
// creation, attach and header checks are in channel_open.cc.
//
// How the payload is copied. A seqlock reader copies bytes the writer may be changing at that
// moment. With memcpy that is a data race, undefined behaviour in the C++ memory model, even
// though the copy is thrown away (the Linux kernel and some libraries accept this and rely on the
// compiler not noticing). The portable copy therefore makes every shared word a relaxed
// std::atomic_ref access, which removes the race entirely (the fix Hans Boehm describes in "Can
// seqlocks get along with programming language memory models?", 2012); on x86-64 and arm64 such
// an access is an ordinary mov / ldr / str. The compiler cannot vectorise it, though, and for
// ~3 KB messages that costs latency (channel_bench 3000 B p50 on the development VM: ~860 ns
// scalar, ~660 ns vector, ~570 ns vector plus the demotion below), most likely because 375
// scalar loads and stores fill the core's out-of-order window before all 47 lines are requested.
// On x86-64 with AVX2 or AVX-512 (checked at run time) the copy is done instead with 32- or
// 64-byte aligned vector moves written in inline asm. The asm is opaque to the compiler (no C++
// object is accessed, so there is no C++ data race to exploit), and its "memory" clobber keeps it
// between the fences and version accesses around it. What the protocol needs from the hardware
// holds for vector moves as for 8-byte ones: under x86-TSO every piece of a vector load is
// ordered before the later version load, and every piece of a vector store is ordered between
// the odd and the even version stores; a vector access may tear, but a torn copy is one the
// version recheck discards anyway. The slot payload is 8-byte aligned and padded to a multiple
// of 8 (channel_layout.h), so whole words never leave the slot.
//
// After a publish the writer also demotes the slot's cache lines (CLDEMOTE, where the CPU has
// it) from its private caches to the shared L3, so the reader's loads hit L3 instead of snooping
// the writer's core one line at a time. A hint only: it changes no byte and no ordering.
//
// Memory orders, all in one place (the comments at each access name their partner):
//   writer: version=2s-1 relaxed -> release fence -> length/payload relaxed
//           -> version=2s release -> published_seq=s release
//   reader: [idle: published_seq acquire until >= s] -> version acquire (v1)
//           -> length/payload relaxed -> acquire fence -> version relaxed (v2)
// If v1 == 2s the reader synchronises with the writer's release store of 2s, so it sees all of
// message s. If any copied word came from a later write (message s+kN), that word was stored
// after the writer's release fence, so the reader's acquire fence synchronises with it and v2
// is at least that write's odd version: v2 != v1 and the copy is discarded.
#include "sidecar/client/channel/channel.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstring>

namespace modelswap {

namespace {

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free,
              "channel words must be lock-free: shared between processes, no locks possible");
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free, "slot length must be lock-free");
static_assert(std::atomic_ref<uint64_t>::required_alignment <= 8, "8-byte alignment suffices");
static_assert(MS_CHANNEL_SLOT_HEADER_BYTES % 8 == 0, "payload must be 8-byte aligned");

// Lock-free atomics are address-free, so atomic_ref works on memory that other processes map at
// other addresses. Readers map the file PROT_READ; they only ever load through these refs.
inline std::atomic_ref<uint64_t> Word(std::byte* p) {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(p));
}
inline std::atomic_ref<uint64_t> Word(uint64_t& field) {
  return std::atomic_ref<uint64_t>(field);
}
inline std::atomic_ref<uint32_t> Word32(std::byte* p) {
  return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(p));
}

inline std::byte* SlotAt(std::byte* base, uint64_t index, uint32_t stride) {
  return base + MS_CHANNEL_HEADER_BYTES + index * stride;
}

// Payload in: relaxed word stores (ordering comes from the fence before and the release after).
void StoreWords(std::byte* dst, const std::byte* src, size_t len) {
  const size_t full = len / 8;
  for (size_t i = 0; i < full; ++i) {
    uint64_t w;
    std::memcpy(&w, src + i * 8, 8);
    Word(dst + i * 8).store(w, std::memory_order_relaxed);
  }
  if (const size_t tail = len % 8; tail != 0) {
    uint64_t w = 0;
    std::memcpy(&w, src + full * 8, tail);
    Word(dst + full * 8).store(w, std::memory_order_relaxed);
  }
}

// Payload out: relaxed word loads (validated afterwards by the acquire fence + version recheck).
void LoadWords(std::byte* dst, std::byte* src, size_t len) {
  const size_t full = len / 8;
  for (size_t i = 0; i < full; ++i) {
    const uint64_t w = Word(src + i * 8).load(std::memory_order_relaxed);
    std::memcpy(dst + i * 8, &w, 8);
  }
  if (const size_t tail = len % 8; tail != 0) {
    const uint64_t w = Word(src + full * 8).load(std::memory_order_relaxed);
    std::memcpy(dst + full * 8, &w, tail);
  }
}

// Asks for the next slot's cache lines in exclusive state now, while nobody waits, so the next
// Publish stores into lines it already owns instead of paying a cross-core ownership transfer
// per line on the reader's critical path. A hint only: it changes no byte, so a lagging reader
// still copying the old message there is at most slowed, never misled (its seqlock check stands).
inline void PrefetchForWrite(std::byte* p, size_t len) {
  for (size_t off = 0; off < len; off += MS_CHANNEL_CACHE_LINE) {
#if defined(__x86_64__)
    asm volatile("prefetchw %0" : : "m"(*(p + off)));  // a NOP on CPUs without PREFETCHW
#else
    __builtin_prefetch(p + off, /*rw=*/1, /*locality=*/3);
#endif
  }
}

#if defined(__x86_64__)

// The payload copy kernels and whether CLDEMOTE exists, fixed once per process.
struct CpuPaths {
  int vector_bytes = 0;  // 64 (AVX-512F), 32 (AVX2) or 0 (relaxed 8-byte words only)
  bool cldemote = false;
};

CpuPaths DetectCpuPaths() {
  __builtin_cpu_init();  // may run before libgcc's own constructor (static initialisation)
  CpuPaths paths;
  // __builtin_cpu_supports also checks that the OS saves the vector state (XCR0).
  if (__builtin_cpu_supports("avx512f")) {
    paths.vector_bytes = 64;
  } else if (__builtin_cpu_supports("avx2")) {
    paths.vector_bytes = 32;
  }
  unsigned a = 0, b = 0, c = 0, d = 0;
  // CPUID.(EAX=7,ECX=0):ECX[25]. CLDEMOTE is a NOP where absent; the check only skips the loop.
  paths.cldemote = __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && (c & (1u << 25)) != 0;
  return paths;
}

const CpuPaths kCpu = DetectCpuPaths();

// Bytes from p to the next multiple of `align` (a power of two), at most len.
inline size_t HeadBytes(const std::byte* p, size_t align, size_t len) {
  return std::min(len, (align - (reinterpret_cast<uintptr_t>(p) & (align - 1))) & (align - 1));
}

// Vector versions of StoreWords / LoadWords. The shared side is accessed with aligned moves
// (the slot payload starts 16 bytes into a line: the head goes word by word); the private side
// may be unaligned. zmm16 / ymm16 are EVEX-only registers, so AVX-512 code leaves no dirty upper
// state behind and needs no vzeroupper; the AVX2 path uses ymm0 and clears it.
__attribute__((target("avx512f"))) void StoreVector64(std::byte* dst, const std::byte* src,
                                                      size_t len) {
  size_t i = HeadBytes(dst, 64, len);
  StoreWords(dst, src, i);
  for (; i + 64 <= len; i += 64) {
    asm volatile("vmovdqu64 (%1), %%zmm16\n\tvmovdqa64 %%zmm16, (%0)"
                 :
                 : "r"(dst + i), "r"(src + i)
                 : "memory", "xmm16");
  }
  StoreWords(dst + i, src + i, len - i);
}

__attribute__((target("avx512f"))) void LoadVector64(std::byte* dst, std::byte* src, size_t len) {
  size_t i = HeadBytes(src, 64, len);
  LoadWords(dst, src, i);
  for (; i + 64 <= len; i += 64) {
    asm volatile("vmovdqa64 (%1), %%zmm16\n\tvmovdqu64 %%zmm16, (%0)"
                 :
                 : "r"(dst + i), "r"(src + i)
                 : "memory", "xmm16");
  }
  LoadWords(dst + i, src + i, len - i);
}

__attribute__((target("avx2"))) void StoreVector32(std::byte* dst, const std::byte* src,
                                                   size_t len) {
  size_t i = HeadBytes(dst, 32, len);
  StoreWords(dst, src, i);
  for (; i + 32 <= len; i += 32) {
    asm volatile("vmovdqu (%1), %%ymm0\n\tvmovdqa %%ymm0, (%0)"
                 :
                 : "r"(dst + i), "r"(src + i)
                 : "memory", "xmm0");
  }
  asm volatile("vzeroupper" ::: "memory");
  StoreWords(dst + i, src + i, len - i);
}

__attribute__((target("avx2"))) void LoadVector32(std::byte* dst, std::byte* src, size_t len) {
  size_t i = HeadBytes(src, 32, len);
  LoadWords(dst, src, i);
  for (; i + 32 <= len; i += 32) {
    asm volatile("vmovdqa (%1), %%ymm0\n\tvmovdqu %%ymm0, (%0)"
                 :
                 : "r"(dst + i), "r"(src + i)
                 : "memory", "xmm0");
  }
  asm volatile("vzeroupper" ::: "memory");
  LoadWords(dst + i, src + i, len - i);
}

// Below this the word loop is kept: a few cache lines gain little from wider moves (only 64 B
// and 3000 B were measured), and its head/tail handling would cost more than it saves.
constexpr size_t kVectorMinBytes = 256;

inline void StorePayload(std::byte* dst, const std::byte* src, size_t len) {
  if (len >= kVectorMinBytes && kCpu.vector_bytes == 64) return StoreVector64(dst, src, len);
  if (len >= kVectorMinBytes && kCpu.vector_bytes == 32) return StoreVector32(dst, src, len);
  StoreWords(dst, src, len);
}

inline void LoadPayload(std::byte* dst, std::byte* src, size_t len) {
  if (len >= kVectorMinBytes && kCpu.vector_bytes == 64) return LoadVector64(dst, src, len);
  if (len >= kVectorMinBytes && kCpu.vector_bytes == 32) return LoadVector32(dst, src, len);
  LoadWords(dst, src, len);
}

// Demotion pays off only when a reader is idle, waiting for the message; a writer publishing
// back to back (a reader then lags anyway) would only slow itself down: each demoted line must be
// fetched back from L3 when the ring comes round (measured: 3 KB flood throughput 4.5M -> 1.7M
// msg/s). So lines are demoted only after a pause of kDemoteAfterTicks since the previous
// publish: 4096 TSC ticks, 1-4 us at 1-4 GHz, several times a 3 KB copy's duration.
constexpr uint64_t kDemoteAfterTicks = 4096;

// True if the previous Publish was at least kDemoteAfterTicks ago (and CLDEMOTE exists).
inline bool PausedSincePrevious(uint64_t* last_ticks) {
  if (!kCpu.cldemote) return false;
  const uint64_t now = __rdtsc();  // unordered, fine for a heuristic
  const bool paused = now - *last_ticks >= kDemoteAfterTicks;
  *last_ticks = now;
  return paused;
}

// Pushes the lines of a just-published slot out to the shared L3 (see the file comment).
inline void DemoteLines(std::byte* p, size_t len) {
  for (size_t off = 0; off < len; off += MS_CHANNEL_CACHE_LINE) {
    asm volatile("cldemote %0" : : "m"(*(p + off)));
  }
}

#else  // not x86-64: the portable word copy, no demotion

inline void StorePayload(std::byte* dst, const std::byte* src, size_t len) {
  StoreWords(dst, src, len);
}
inline void LoadPayload(std::byte* dst, std::byte* src, size_t len) {
  LoadWords(dst, src, len);
}
inline bool PausedSincePrevious(uint64_t*) {
  return false;
}
inline void DemoteLines(std::byte*, size_t) {}

#endif

}  // namespace

uint64_t ChannelWriter::Publish(std::span<const std::byte> msg) {
  if (msg.size() > message_bytes_) return 0;
  const uint64_t seq = next_seq_;
  std::byte* slot = SlotAt(map_.base(), seq & mask_, stride_);
  auto version = Word(slot);
  // Relaxed is enough: the release fence below orders this store before every payload store, for
  // any reader whose acquire fence follows a load of one of those payload words.
  version.store(2 * seq - 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  // Relaxed: protected by the seqlock; published by the release store of the even version.
  Word32(slot + offsetof(ms_channel_slot_header, length))
      .store(static_cast<uint32_t>(msg.size()), std::memory_order_relaxed);
  StorePayload(slot + MS_CHANNEL_SLOT_HEADER_BYTES, msg.data(), msg.size());
  // Release: pairs with the reader's acquire load of v1; makes the payload above visible with it.
  version.store(2 * seq, std::memory_order_release);
  // Release: pairs with the acquire loads of published_seq (ReadNext's idle poll and lapped
  // path, ReadLatest), which then find the slot already at version >= 2*seq.
  Word(map_.As<ms_channel_header>()->published_seq).store(seq, std::memory_order_release);
  // After the publish, not before: CLDEMOTE is ordered after the stores to its own line, and
  // issued earlier it measurably delays the published_seq store the reader is waiting for. The
  // reader needs ~one cross-core transfer to see published_seq, time in which most lines reach L3.
  // The clock is read here, off the reader's critical path; it measures publish-to-publish gaps.
  if (PausedSincePrevious(&last_publish_ticks_)) {
    DemoteLines(slot, MS_CHANNEL_SLOT_HEADER_BYTES + msg.size());
  }
  next_seq_ = seq + 1;
  PrefetchForWrite(SlotAt(map_.base(), next_seq_ & mask_, stride_),
                   MS_CHANNEL_SLOT_HEADER_BYTES + msg.size());
  // After the stores: a truncation before or during them sent them to private pages (channel.h).
  if (guard_.damaged()) return 0;
  return seq;
}

// Runs once at attach, while this process holds the writer flock, so no other writer is active.
// A previous writer may have died: after the even store but before published_seq (then the slot
// is newer than published_seq), or mid-write (an odd version). Sequence ids must continue above
// everything any reader may have seen, and versions in a slot must never go down.
void ChannelWriter::Recover() {
  ms_channel_header* header = map_.As<ms_channel_header>();
  // Acquire: pairs with the previous writer's release store (it may have run on another core).
  uint64_t published = Word(header->published_seq).load(std::memory_order_acquire);
  uint64_t next = published + 1;
  abandoned_slots_ = 0;
  for (uint64_t i = 0; i <= mask_; ++i) {
    // Acquire for the same reason as above; no other writer can change it now.
    const uint64_t v = Word(SlotAt(map_.base(), i, stride_)).load(std::memory_order_acquire);
    if (v % 2 == 1) {
      ++abandoned_slots_;
      // Message (v+1)/2 was never completed; the next publish reuses its id and rewrites the
      // slot (same slot, since ids are congruent), which is the repair.
      next = std::max(next, (v + 1) / 2);
    } else if (v != 0) {
      next = std::max(next, v / 2 + 1);
    }
  }
  // Release: pairs with readers' acquire loads; the slots it vouches for are already complete.
  Word(header->published_seq).store(next - 1, std::memory_order_release);
  Word(header->writer_epoch)
      .store(Word(header->writer_epoch).load(std::memory_order_relaxed) + 1,
             std::memory_order_relaxed);  // diagnostics only; no ordering needed
  next_seq_ = next;
}

bool ChannelReader::TryCopy(uint64_t seq, uint64_t v1, std::span<std::byte> out, uint32_t* length) {
  std::byte* slot = SlotAt(map_.base(), seq & mask_, stride_);
  // Relaxed: validated by the version recheck below; clamped so a torn value cannot overrun.
  const uint32_t len = std::min(
      Word32(slot + offsetof(ms_channel_slot_header, length)).load(std::memory_order_relaxed),
      message_bytes_);
  LoadPayload(out.data(), slot + MS_CHANNEL_SLOT_HEADER_BYTES, len);
  // Acquire fence: pairs with the writer's release fence after its odd store (see file comment).
  std::atomic_thread_fence(std::memory_order_acquire);
  // Relaxed: the fence above already orders it after the payload loads.
  const uint64_t v2 = Word(slot).load(std::memory_order_relaxed);
  if (v2 != v1) {
    ++torn_retries_;
    return false;
  }
  *length = len;
  return true;
}

// Both reads check the guard after reading, never before: a truncation during the read made it
// read zeros, and only the flag read afterwards can tell (common/mapping_guard.h).
ReadResult ChannelReader::ReadNext(std::span<std::byte> out) {
  ReadResult r = ReadNextUnguarded(out);
  if (guard_.damaged()) return {.status = ReadStatus::kFileDamaged};
  return r;
}

ReadResult ChannelReader::ReadLatest(std::span<std::byte> out) {
  ReadResult r = ReadLatestUnguarded(out);
  if (guard_.damaged()) return {.status = ReadStatus::kFileDamaged};
  return r;
}

ReadResult ChannelReader::ReadNextUnguarded(std::span<std::byte> out) {
  if (out.size() < message_bytes_) return {.status = ReadStatus::kBufferTooSmall};
  // Bounded: a writer that laps the cursor during every copy would otherwise keep this loop
  // going for as long as it publishes. Every exit leaves the cursor and missed count exact.
  for (uint32_t attempt = 0; attempt < kChannelReadTries; ++attempt) {
    const uint64_t want = next_seq_;
    if (want > known_published_) {
      // Idle polling touches only published_seq, which the writer stores once per message, and
      // never the slot being written: polling the slot would pull its line away from the writer
      // between each of its stores. Acquire pairs with Publish's release store, so once
      // published_seq >= want the slot is complete (or already overwritten, seen below).
      known_published_ =
          Word(map_.As<ms_channel_header>()->published_seq).load(std::memory_order_acquire);
      if (want > known_published_) return {.status = ReadStatus::kEmpty};
    }
    std::byte* slot = SlotAt(map_.base(), want & mask_, stride_);
    // Acquire: pairs with the writer's release store of the even version (payload visible).
    const uint64_t v1 = Word(slot).load(std::memory_order_acquire);
    if (v1 < 2 * want) return {.status = ReadStatus::kEmpty};  // defensive: see Recover
    if (v1 == 2 * want) {
      uint32_t len = 0;
      if (!TryCopy(want, v1, out, &len)) continue;  // overwritten meanwhile: re-evaluate
      const uint64_t missed = pending_missed_;
      total_missed_ += missed;
      pending_missed_ = 0;
      next_seq_ = want + 1;
      return {.status = ReadStatus::kMessage, .length = len, .seq = want, .missed = missed};
    }
    // Lapped: the slot holds (or is being given) message t >= want + N, so every id <= t - N has
    // been overwritten. published_seq may prove more ids gone; acquire pairs with its release.
    const uint64_t t = (v1 + 1) / 2;
    const uint64_t p =
        Word(map_.As<ms_channel_header>()->published_seq).load(std::memory_order_acquire);
    const uint64_t newest = std::max(t, p);
    // Lapped means newest >= want + N. Anything else is a damaged file (a version not of this
    // slot's ids, or near 2^64): report nothing rather than move the cursor backwards or wrap
    // the missed count.
    if (newest <= want || newest - want <= mask_) return {.status = ReadStatus::kEmpty};
    const uint64_t first_alive = newest - mask_;  // = newest - N + 1
    pending_missed_ += first_alive - want;
    next_seq_ = first_alive;
    ++lapped_retries_;
  }
  return {.status = ReadStatus::kBusy};
}

ReadResult ChannelReader::ReadLatestUnguarded(std::span<std::byte> out) {
  if (out.size() < message_bytes_) return {.status = ReadStatus::kBufferTooSmall};
  // Bounded in total, not per published_seq: a writer publishing back to back moves
  // published_seq on every try, and a bound that restarts at each new value never ends.
  uint64_t first_p = 0;
  bool moved = false;
  for (uint32_t attempt = 0; attempt < kChannelReadTries; ++attempt) {
    // Acquire: pairs with Publish's release store, so the slot is at version >= 2p.
    const uint64_t p =
        Word(map_.As<ms_channel_header>()->published_seq).load(std::memory_order_acquire);
    if (p == 0) return {.status = ReadStatus::kEmpty};
    std::byte* slot = SlotAt(map_.base(), p & mask_, stride_);
    // Acquire: pairs with the writer's release store of the even version.
    const uint64_t v1 = Word(slot).load(std::memory_order_acquire);
    // A one-slot ring whose slot is being given p + 1: p is gone and p + 1 not yet published.
    // Not waited for: the writer may have died mid-write (then only a new writer ends it).
    if (v1 == 2 * p + 1) return {.status = ReadStatus::kEmpty};
    // Older than published_seq vouches for: only a damaged file (see ReadNext).
    if (v1 < 2 * p) return {.status = ReadStatus::kEmpty};
    uint32_t len = 0;
    if (v1 != 2 * p) ++lapped_retries_;
    if (v1 != 2 * p || !TryCopy(p, v1, out, &len)) {
      // Lapped: a newer message took the slot, and published_seq passes p within that publish.
      // If it stays at p, the writer stopped between its slot and sequence stores (preempted,
      // killed) or the file is damaged: kEmpty after the last try. If it moves, the writer is
      // publishing over the slot faster than we copy it: kBusy.
      if (attempt == 0) first_p = p;
      moved = moved || p != first_p;
      continue;
    }
    uint64_t missed = 0;
    if (p >= next_seq_) {
      missed = pending_missed_ + (p - next_seq_);
      total_missed_ += missed;
      pending_missed_ = 0;
      next_seq_ = p + 1;
    }
    return {.status = ReadStatus::kMessage, .length = len, .seq = p, .missed = missed};
  }
  return {.status = moved ? ReadStatus::kBusy : ReadStatus::kEmpty};
}

uint64_t ChannelReader::published_seq() const {
  // Acquire: pairs with Publish's release store (callers may go on to read the slot).
  return Word(map_.As<ms_channel_header>()->published_seq).load(std::memory_order_acquire);
}

uint64_t ChannelReader::writer_epoch() const {
  // Relaxed: a diagnostic counter that orders nothing.
  return Word(map_.As<ms_channel_header>()->writer_epoch).load(std::memory_order_relaxed);
}

Result<bool> ChannelReader::Replaced() const {
  return map_.Replaced();
}

}  // namespace modelswap
