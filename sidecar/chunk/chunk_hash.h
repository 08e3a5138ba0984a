// The identity of a chunk: the SHA-256 of its (uncompressed) bytes, and its 64-hex-digit name.
//
// SHA-256 rather than the XXH3 the .msf file uses for its own checksums: a chunk's hash is its
// name in a store shared by every version and every writer, so two different contents must never
// collide, even when someone crafts them (casync, desync, Nydus and Xet all name chunks by a
// cryptographic hash for the same reason). OpenSSL's EVP interface picks the SHA-NI / AVX2 code
// path at run time.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelswap::chunk {

struct ChunkHash {
  std::array<uint8_t, 32> bytes{};

  auto operator<=>(const ChunkHash&) const = default;
  bool operator==(const ChunkHash&) const = default;
};

// SHA-256 of data (OpenSSL EVP). Aborts only if OpenSSL cannot allocate a digest context.
[[nodiscard]] ChunkHash Sha256(std::span<const std::byte> data);

// 64 lowercase hex digits.
[[nodiscard]] std::string ToHex(const ChunkHash& hash);

// Parses exactly 64 hex digits (either case). kInvalidArgument naming the text otherwise.
[[nodiscard]] Result<ChunkHash> ParseChunkHash(std::string_view hex);

// For unordered containers: the first 8 bytes of a SHA-256 are already uniformly spread.
struct ChunkHashHasher {
  size_t operator()(const ChunkHash& h) const noexcept {
    size_t v;
    std::memcpy(&v, h.bytes.data(), sizeof v);
    return v;
  }
};

}  // namespace modelswap::chunk

template <>
struct std::hash<modelswap::chunk::ChunkHash> : modelswap::chunk::ChunkHashHasher {};
