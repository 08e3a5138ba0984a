// The dispatched XXH3 equals the reference libxxhash at every length and alignment, one-shot and
// streamed; the text form round-trips.
#include "common/checksum.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <random>
#include <vector>

namespace modelswap {
namespace {

TEST(Checksum, MatchesReferenceAtEveryLengthAndAlignment) {
  std::vector<std::byte> buf(20000);
  std::mt19937_64 rng(1);
  for (auto& b : buf)
    b = std::byte(rng() & 0xff);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 300; ++n)
    lengths.push_back(n);
  for (size_t n : {1023u, 1024u, 1025u, 4096u, 12345u, 19000u})
    lengths.push_back(n);
  for (size_t offset : {0u, 1u, 7u, 64u}) {
    for (size_t n : lengths) {
      auto span = std::span<const std::byte>(buf).subspan(offset, n);
      ASSERT_EQ(Xxh3(span), XXH3_64bits(span.data(), n)) << "length " << n << " offset " << offset;
      ASSERT_EQ(Xxh3WithSeed(span, 99), XXH3_64bits_withSeed(span.data(), n, 99));
    }
  }
}

TEST(Checksum, StreamEqualsOneShotForAnySplit) {
  std::vector<std::byte> buf(100000);
  std::mt19937_64 rng(2);
  for (auto& b : buf)
    b = std::byte(rng() & 0xff);
  for (int trial = 0; trial < 50; ++trial) {
    Xxh3Stream stream;
    size_t at = 0;
    while (at < buf.size()) {
      size_t n = std::min<size_t>(buf.size() - at, rng() % 5000);
      stream.Update(std::span<const std::byte>(buf).subspan(at, n));
      at += n;
    }
    ASSERT_EQ(stream.Digest(), XXH3_64bits(buf.data(), buf.size()));
  }
}

TEST(Checksum, MovedStreamKeepsState) {
  Xxh3Stream a;
  a.Update(std::as_bytes(std::span("hello", 5)));
  Xxh3Stream b = std::move(a);
  b.Update(std::as_bytes(std::span(" world", 6)));
  EXPECT_EQ(b.Digest(), XXH3_64bits("hello world", 11));
}

TEST(Checksum, TextForm) {
  EXPECT_EQ(FormatChecksum(0x0123456789abcdefULL), "xxh3:0123456789abcdef");
  uint64_t v = 0;
  ASSERT_TRUE(ParseChecksum("xxh3:0123456789abcdef", &v));
  EXPECT_EQ(v, 0x0123456789abcdefULL);
  for (const char* bad : {"", "xxh3:", "xxh3:0123456789ABCDEF", "xxh3:0123456789abcde",
                          "md5:0123456789abcdef", "xxh3:0123456789abcdefg"}) {
    EXPECT_FALSE(ParseChecksum(bad, &v)) << bad;
  }
  EXPECT_FALSE(ChecksumVariant().empty());
}

}  // namespace
}  // namespace modelswap
