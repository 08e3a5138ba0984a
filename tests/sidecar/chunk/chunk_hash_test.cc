// SHA-256 chunk names: known answers, hex round trip, malformed hex refused.
#include "sidecar/chunk/chunk_hash.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace modelswap::chunk {
namespace {

std::span<const std::byte> Bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

TEST(ChunkHash, KnownAnswers) {
  // FIPS 180-2, appendix B.1, and the empty message.
  EXPECT_EQ(ToHex(Sha256(Bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ToHex(Sha256(Bytes(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ChunkHash, HexRoundTripAndUpperCase) {
  ChunkHash h = Sha256(Bytes("modelswap"));
  auto parsed = ParseChunkHash(ToHex(h));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, h);
  std::string upper = ToHex(h);
  for (char& c : upper)
    c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(ParseChunkHash(upper).value(), h);
}

TEST(ChunkHash, MalformedHexRefused) {
  std::string good = ToHex(Sha256(Bytes("x")));
  for (std::string bad : {std::string(), good.substr(1), good + "0", good.substr(0, 63) + "g",
                          std::string(64, ' ')}) {
    auto r = ParseChunkHash(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  }
}

TEST(ChunkHash, OrderedAndHashable) {
  ChunkHash a = Sha256(Bytes("a")), b = Sha256(Bytes("b"));
  EXPECT_NE(a, b);
  EXPECT_TRUE(a < b || b < a);
  std::unordered_set<ChunkHash> set{a, b, a};
  EXPECT_EQ(set.size(), 2u);
}

}  // namespace
}  // namespace modelswap::chunk
