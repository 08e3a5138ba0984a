// Helpers shared by the chunk tests: seeded random bytes and an in-memory chunk sink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <vector>

#include "sidecar/chunk/recipe.h"

namespace modelswap::chunk::testing {

inline std::vector<std::byte> RandomBytes(size_t n, uint64_t seed) {
  std::vector<std::byte> out(n);
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < n; ++i)
    out[i] = static_cast<std::byte>(rng());
  return out;
}

// Keeps every chunk handed to it, by hash; stored_length is the chunk's length (no store).
struct MemorySink {
  std::map<ChunkHash, std::vector<std::byte>> chunks;
  int calls = 0;
  ChunkSink sink() {
    return [this](const RecipeChunk& c, std::span<const std::byte> bytes) -> Result<uint32_t> {
      ++calls;
      chunks[c.hash].assign(bytes.begin(), bytes.end());
      return c.length;
    };
  }
};

}  // namespace modelswap::chunk::testing
