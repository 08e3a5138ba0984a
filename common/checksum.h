// XXH3-64 checksums at memory speed, for model files, manifests and snapshots.
//
// Debian's libxxhash.so is built without AVX2/AVX-512 dispatch (~7.5 GB/s on our machines), so
// we compile xxHash header-only three times (SSE2, AVX2, AVX-512; checksum_variant_*.cc) and pick
// the widest one the CPU supports on first use (~12 GB/s, the memory-read limit). The results are
// identical whichever variant runs: XXH3 is defined independently of the vector width.
//
// Thread safety: the free functions are thread-safe; an Xxh3Stream is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace modelswap {

uint64_t Xxh3(std::span<const std::byte> data);
uint64_t Xxh3WithSeed(std::span<const std::byte> data, uint64_t seed);
inline uint64_t Xxh3(std::string_view s) {
  return Xxh3(std::as_bytes(std::span(s)));
}

// Incremental XXH3-64 (seed 0): Update() any number of times; Digest() equals Xxh3() of the
// concatenation.
class Xxh3Stream {
 public:
  Xxh3Stream();
  ~Xxh3Stream();
  Xxh3Stream(Xxh3Stream&&) noexcept;
  Xxh3Stream& operator=(Xxh3Stream&&) noexcept;

  void Update(std::span<const std::byte> data);
  uint64_t Digest() const;

 private:
  void* state_;  // XXH3_state_t of the chosen variant
};

// "xxh3:" + 16 lowercase hex digits: the form used in manifests, status and CLI output.
std::string FormatChecksum(uint64_t checksum);
// Inverse of FormatChecksum; false on any other shape.
bool ParseChecksum(std::string_view text, uint64_t* out);

// Which variant runs here: "avx512", "avx2" or "sse2" (for logs and benchmarks).
std::string_view ChecksumVariant();

}  // namespace modelswap
