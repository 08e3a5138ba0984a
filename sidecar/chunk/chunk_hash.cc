// SHA-256 through OpenSSL's EVP interface, and the hex form chunk files are named by.
#include "sidecar/chunk/chunk_hash.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace modelswap::chunk {

ChunkHash Sha256(std::span<const std::byte> data) {
  ChunkHash out;
  unsigned int len = 0;
  // EVP_Digest is the one-shot form of EVP_DigestInit/Update/Final; it fetches the provider's
  // implementation (SHA-NI or AVX2 where the CPU has them).
  if (EVP_Digest(data.data(), data.size(), out.bytes.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.bytes.size()) {
    std::abort();  // only on allocation failure inside OpenSSL: nothing sensible to return
  }
  return out;
}

std::string ToHex(const ChunkHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < hash.bytes.size(); ++i) {
    out[2 * i] = kDigits[hash.bytes[i] >> 4];
    out[2 * i + 1] = kDigits[hash.bytes[i] & 0xf];
  }
  return out;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Result<ChunkHash> ParseChunkHash(std::string_view hex) {
  auto bad = [&] {
    std::string shown(hex.substr(0, 80));
    return Fail(Code::kInvalidArgument,
                "chunk hash \"" + shown + "\" is not 64 hex digits (a SHA-256)");
  };
  if (hex.size() != 64) return bad();
  ChunkHash out;
  for (size_t i = 0; i < out.bytes.size(); ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return bad();
    out.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace modelswap::chunk
