// A self-checking state kept in a region, for the snapshot tests.
//
// Layout (page = the region's block size): page 0 holds {magic, generation, digest}; every other
// page is either all zeros (never written) or {gen_written, page index, PRNG words seeded by
// both}. digest is the XOR of XXH3 over every non-zero page. A restored state passes Verify()
// only if it is exactly one committed state: a page newer than the header's generation, a page
// with torn content, or a page from an older or newer state than its neighbours (which changes
// the XOR) are all caught; and the header's generation must equal the region's.
//
// Thread safety: one thread per StateChecker (it writes the region).
#pragma once

#include <spdlog/fmt/fmt.h>

#include <cstring>
#include <random>
#include <span>

#include "common/checksum.h"
#include "common/status.h"
#include "sidecar/client/region/region.h"

namespace modelswap::testing {

inline constexpr uint64_t kStateMagic = 0x5354415445434b31ULL;  // "STATECK1"

inline uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class StateChecker {
 public:
  // page_bytes: the region's block size (a multiple of 8).
  StateChecker(std::span<std::byte> bytes, uint64_t page_bytes)
      : bytes_(bytes), page_(page_bytes), pages_(bytes.size() / page_bytes) {}

  // Returns the generation the state holds, or an error naming the inconsistency.
  Result<uint64_t> Verify(uint64_t region_generation) const {
    const uint64_t* h = Words(0);
    if (h[0] == 0 && h[1] == 0 && h[2] == 0) {
      for (uint64_t p = 1; p < pages_; ++p)
        if (!IsZero(p)) return Bad(fmt::format("fresh state but page {} is not zero", p));
      if (region_generation != 0)
        return Bad(fmt::format("empty state but region generation {}", region_generation));
      return uint64_t{0};
    }
    if (h[0] != kStateMagic) return Bad(fmt::format("header magic {:#x}", h[0]));
    if (h[1] != region_generation) {
      return Bad(
          fmt::format("state generation {} but region generation {}", h[1], region_generation));
    }
    uint64_t digest = 0;
    for (uint64_t p = 1; p < pages_; ++p) {
      if (IsZero(p)) continue;
      const uint64_t* w = Words(p);
      if (w[0] > h[1] || w[0] == 0 || w[1] != p)
        return Bad(
            fmt::format("page {} claims gen {} index {} (state gen {})", p, w[0], w[1], h[1]));
      uint64_t seed = w[0] * 1000003 + p;
      for (uint64_t i = 2; i < page_ / 8; ++i)
        if (w[i] != SplitMix(seed)) return Bad(fmt::format("page {} word {} is torn", p, i));
      digest ^= PageHash(p);
    }
    if (digest != h[2]) return Bad(fmt::format("digest mismatch: a page is from another state"));
    return h[1];
  }

  // Rewrites 1..4 random pages and the header for generation `gen` (marking them dirty first).
  void Update(Region& region, std::mt19937_64& rng) {
    const uint64_t gen = region.generation() + 1;
    uint64_t digest = Words(0)[2];
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n && pages_ > 1; ++i) {
      const uint64_t p = 1 + rng() % (pages_ - 1);
      if (!IsZero(p)) digest ^= PageHash(p);
      (void)region.MarkDirty(p * page_, page_);
      uint64_t* w = Words(p);
      w[0] = gen;
      w[1] = p;
      uint64_t seed = gen * 1000003 + p;
      for (uint64_t k = 2; k < page_ / 8; ++k)
        w[k] = SplitMix(seed);
      digest ^= PageHash(p);
    }
    (void)region.MarkDirty(0, 24);
    uint64_t* h = Words(0);
    h[0] = kStateMagic;
    h[1] = gen;
    h[2] = digest;
  }

 private:
  static std::unexpected<Error> Bad(std::string m) { return Fail(Code::kCorruption, m); }
  const uint64_t* Words(uint64_t p) const {
    return reinterpret_cast<const uint64_t*>(bytes_.data() + p * page_);
  }
  uint64_t* Words(uint64_t p) { return reinterpret_cast<uint64_t*>(bytes_.data() + p * page_); }
  bool IsZero(uint64_t p) const {
    const std::byte* b = bytes_.data() + p * page_;
    return b[0] == std::byte{0} && std::memcmp(b, b + 1, page_ - 1) == 0;
  }
  uint64_t PageHash(uint64_t p) const { return Xxh3(bytes_.subspan(p * page_, page_)); }

  std::span<std::byte> bytes_;
  uint64_t page_;
  uint64_t pages_;
};

}  // namespace modelswap::testing
