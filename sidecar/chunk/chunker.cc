// FastCDC cut points and the zero-run rule (chunker.h says why each piece is there).
#include "sidecar/chunk/chunker.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <string>

namespace modelswap::chunk {
namespace {

// splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", 2014): a
// fixed, well-mixed sequence. The table is computed at compile time from a fixed seed, so it is
// part of the source as much as a literal table would be; tests/sidecar/chunk pins its values.
constexpr uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr std::array<uint64_t, 256> MakeGear() {
  std::array<uint64_t, 256> table{};
  uint64_t state = 0x6d6f64656c737761ull;  // "modelswa": the seed must never change
  for (auto& v : table)
    v = SplitMix64(state);
  return table;
}

constexpr std::array<uint64_t, 256> kGear = MakeGear();

// A mask of `ones` bits spread evenly over bits 63..16. The Gear hash shifts left one bit per
// byte, so bit k of fp depends on the last k + 1 bytes: spreading the bits (the paper's
// "zero-padded" masks) makes each cut test depend on about 48 bytes, not on the last `ones`.
constexpr uint64_t SpreadMask(int ones) {
  uint64_t mask = 0;
  for (int i = 0; i < ones; ++i)
    mask |= uint64_t{1} << (63 - (i * 48) / ones);
  return mask;
}

struct Masks {
  uint64_t small;  // before avg_bytes: log2(avg) + 2 bits, cutting is 4x rarer
  uint64_t large;  // from avg_bytes on: log2(avg) - 2 bits, cutting is 4x likelier
};

Masks MasksFor(const ChunkerParams& p) {
  int bits = std::countr_zero(p.avg_bytes);  // avg is a power of two (ValidateParams)
  return {SpreadMask(bits + 2), SpreadMask(bits - 2)};
}

// Zero bytes at the front of data, counting at most `limit`.
size_t ZeroRun(std::span<const std::byte> data, size_t limit) {
  size_t n = std::min(limit, data.size());
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    if (w != 0) break;
  }
  while (i < n && data[i] == std::byte{0})
    ++i;
  return i;
}

// The start of the first run of at least `run` zero bytes that begins in [1, end), or end.
// Such a run holds a whole 8-byte word at an offset that is a multiple of 8 (run >= 15), so only
// those words are tested; a zero word is then widened to its run. The answer is defined by the
// bytes alone (where a run starts), not by the scan's stride or the buffer's alignment.
size_t FirstZeroRun(std::span<const std::byte> data, size_t end, size_t run) {
  for (size_t w = 8; w < end + run && w + 8 <= data.size(); w += 8) {
    uint64_t word;
    std::memcpy(&word, data.data() + w, 8);
    if (word != 0) continue;
    size_t start = w;
    while (start > 0 && data[start - 1] == std::byte{0})
      --start;
    if (start >= end) return end;
    size_t len = ZeroRun(data.subspan(start), run);
    if (start > 0 && len >= run) return start;
    // Too short (or the run at data[0], which the caller saw): resume at the first aligned word
    // after it (never before w: the loop always moves forward).
    size_t next = (start + len + 7) / 8 * 8;
    w = std::max(w, next - 8);
  }
  return end;
}

}  // namespace

Status ValidateParams(const ChunkerParams& p) {
  auto bad = [&](const std::string& rule) {
    return Fail(Code::kInvalidArgument, "chunker params min=" + std::to_string(p.min_bytes) +
                                            " avg=" + std::to_string(p.avg_bytes) +
                                            " max=" + std::to_string(p.max_bytes) + ": " + rule);
  };
  if (p.min_bytes < 64) return bad("min_bytes must be at least 64");
  if (!std::has_single_bit(p.avg_bytes) || p.avg_bytes < 256 || p.avg_bytes > (4u << 20)) {
    return bad("avg_bytes must be a power of two in 256..4 MiB");
  }
  if (!(p.min_bytes < p.avg_bytes && p.avg_bytes < p.max_bytes)) {
    return bad("need min_bytes < avg_bytes < max_bytes");
  }
  if (p.max_bytes > kMaxChunkBytes) return bad("max_bytes must be at most 16 MiB");
  return Ok();
}

size_t FindCut(std::span<const std::byte> data, const ChunkerParams& p) {
  size_t n = data.size();
  if (n <= p.min_bytes) return n;
  if (n > p.max_bytes) n = p.max_bytes;
  size_t normal = std::min<size_t>(p.avg_bytes, n);
  const Masks masks = MasksFor(p);
  const auto* src = reinterpret_cast<const uint8_t*>(data.data());
  uint64_t fp = 0;
  size_t i = p.min_bytes;  // cut-point skipping: nothing below min_bytes is hashed
  for (; i < normal; ++i) {
    fp = (fp << 1) + kGear[src[i]];
    if ((fp & masks.small) == 0) return i + 1;
  }
  for (; i < n; ++i) {
    fp = (fp << 1) + kGear[src[i]];
    if ((fp & masks.large) == 0) return i + 1;
  }
  return n;
}

Cut NextChunk(std::span<const std::byte> data, const ChunkerParams& p) {
  const size_t min = p.min_bytes, max = p.max_bytes;
  size_t zeros = ZeroRun(data, max + min);
  if (zeros >= min) {
    // A hole of at most max bytes; a run just over max leaves exactly min for the next hole
    // rather than a short tail that would start a data chunk.
    size_t len = zeros <= max ? zeros : (zeros - max >= min ? max : zeros - min);
    return {len, true};
  }
  size_t cut = FindCut(data, p);
  return {FirstZeroRun(data, cut, min), false};
}

}  // namespace modelswap::chunk
