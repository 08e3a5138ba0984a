// Self-checking channel payloads for the channel tests and the peer process.
//
// Word i (8 bytes, little-endian) of message `seq` is Mix(seq, i); a tail shorter than a word
// holds Mix's low bytes. Any mix of two messages, or of a message and stale slot bytes, fails
// CheckPayload. python/modelswap tests compute the same function
// (tests/sidecar/client/channel/payload.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace modelswap::channel_test {

inline uint64_t Mix(uint64_t seq, uint64_t i) {
  return seq * 0x9E3779B97F4A7C15ULL + (i + 1) * 0xBF58476D1CE4E5B9ULL;
}

inline void FillPayload(uint64_t seq, std::span<std::byte> out) {
  for (size_t off = 0, i = 0; off < out.size(); off += 8, ++i) {
    const uint64_t w = Mix(seq, i);
    std::memcpy(out.data() + off, &w, out.size() - off < 8 ? out.size() - off : 8);
  }
}

inline bool CheckPayload(uint64_t seq, std::span<const std::byte> in) {
  for (size_t off = 0, i = 0; off < in.size(); off += 8, ++i) {
    const uint64_t w = Mix(seq, i);
    if (std::memcmp(in.data() + off, &w, in.size() - off < 8 ? in.size() - off : 8) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace modelswap::channel_test
