// Recipe format version 2 (delta chunks, recipe.h): round trip, one encoding per recipe, and
// every damaged, truncated or hostile version 2 recipe, or version 1 recipe using its fields,
// refused with kCorruption naming what is wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/checksum.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "tests/sidecar/chunk/chunk_test_util.h"
#include "tests/sidecar/chunk/recipe_test_util.h"

namespace modelswap::chunk {
namespace {

using testing::Bytes;
using testing::EntryAt;
using testing::ExpectCorrupt;
using testing::MemorySink;
using testing::RandomBytes;
using testing::Reseal;
using testing::SetU32;
using testing::U32At;

// A version 1 recipe (as recipe_test's Sample) and the same with every third stored chunk a
// delta against some base.
Recipe Plain() {
  auto data = RandomBytes(2 << 20, 11);
  std::fill(data.begin() + (1 << 20), data.begin() + (1 << 20) + 70'000, std::byte{0});
  MemorySink sink;
  return ChunkBytes(data, "ranker", "v8", 7, {}, sink.sink()).value();
}
Recipe WithDeltas() {
  Recipe r = Plain();
  int k = 0;
  for (RecipeChunk& c : r.chunks) {
    if (c.hole || k++ % 3 != 0) continue;
    c.delta = true;
    c.base_hash = Sha256(RandomBytes(16, k));
    c.base_length = c.length - 1;
    c.stored_length = 40 + k;
  }
  return r;
}
size_t DeltaCount(const Recipe& r) {
  return std::count_if(r.chunks.begin(), r.chunks.end(), [](auto& c) { return c.delta; });
}

size_t BaseAt(const Recipe& r, size_t k) {
  return EntryAt(r, r.chunks.size()) + k * kRecipeBaseEntryBytes;
}
size_t FirstDelta(const Recipe& r, bool delta = true) {
  size_t i = 0;
  while (r.chunks[i].delta != delta || r.chunks[i].hole)
    ++i;
  return i;
}

TEST(RecipeDelta, RoundTrip) {
  Recipe r = WithDeltas();
  const size_t deltas = DeltaCount(r);
  ASSERT_GE(deltas, 3u);
  std::string text = EncodeRecipe(r);
  EXPECT_EQ(U32At(text, 8), kRecipeDeltaFormatVersion);
  EXPECT_EQ(U32At(text, 44), deltas);
  EXPECT_EQ(text.size(), BaseAt(r, deltas) + kRecipeTrailerBytes);
  // The k-th base record is the k-th delta entry's.
  const size_t i = FirstDelta(r);
  EXPECT_EQ(std::memcmp(text.data() + BaseAt(r, 0), r.chunks[i].base_hash.bytes.data(), 32), 0);
  EXPECT_EQ(U32At(text, BaseAt(r, 0) + 32), r.chunks[i].base_length);
  EXPECT_EQ(U32At(text, EntryAt(r, i) + 16), 2u);
  auto back = DecodeRecipe(Bytes(text));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(*back, r);
  EXPECT_EQ(EncodeRecipe(*back), text);
  // Without its deltas the same recipe is version 1 again.
  for (RecipeChunk& c : r.chunks) {
    c.delta = false;
    c.base_hash = {};
    c.base_length = 0;
  }
  EXPECT_EQ(U32At(EncodeRecipe(r), 8), kRecipeFormatVersion);
}

TEST(RecipeDelta, TruncationAtEveryByteRefused) {
  std::string text = EncodeRecipe(WithDeltas());
  for (size_t n = 0; n < text.size(); ++n) {
    auto r = DecodeRecipe(Bytes(text.substr(0, n)));
    ASSERT_FALSE(r.has_value()) << "accepted a recipe cut to " << n << " bytes";
    ASSERT_EQ(r.error().code(), Code::kCorruption) << n;
  }
  ExpectCorrupt(text + std::string(1, '\0'), "do not match");
}

TEST(RecipeDelta, RandomBitFlipsRefused) {
  std::string text = EncodeRecipe(WithDeltas());
  std::mt19937_64 rng(13);
  for (int i = 0; i < 2000; ++i) {
    std::string bad = text;
    size_t bit = rng() % (bad.size() * 8);
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    auto r = DecodeRecipe(Bytes(bad));
    ASSERT_FALSE(r.has_value()) << "accepted a flip of bit " << bit;
    ASSERT_EQ(r.error().code(), Code::kCorruption);
  }
}

TEST(RecipeDelta, Version1CannotUseVersion2Fields) {
  const Recipe r = Plain();
  const std::string text = EncodeRecipe(r);
  ASSERT_EQ(U32At(text, 8), kRecipeFormatVersion);
  std::string bad = text;
  SetU32(bad, EntryAt(r, 1) + 16, 2);  // the delta flag
  ExpectCorrupt(Reseal(bad), "chunk 1: unknown flags 2");
  bad = text;
  SetU32(bad, 44, 1);  // a delta_count
  ExpectCorrupt(Reseal(bad), "reserved header field is not 0");
}

TEST(RecipeDelta, Version2HeaderChecks) {
  const Recipe r = WithDeltas();
  const std::string text = EncodeRecipe(r);
  const uint32_t deltas = U32At(text, 44);
  // delta_count 0: a recipe without deltas has one encoding, version 1.
  std::string bad = EncodeRecipe(Plain());
  SetU32(bad, 8, kRecipeDeltaFormatVersion);
  ExpectCorrupt(Reseal(bad), "format version 2 with delta_count 0");
  // Over chunk_count: refused before anything is sized by it.
  for (uint32_t d : {static_cast<uint32_t>(r.chunks.size() + 1), 0xffff'ffffu}) {
    bad = text;
    SetU32(bad, 44, d);
    ExpectCorrupt(Reseal(bad), "over chunk_count");
  }
  // Not matching the bytes of base records.
  for (uint32_t d : {deltas - 1, deltas + 1}) {
    bad = text;
    SetU32(bad, 44, d);
    ExpectCorrupt(Reseal(bad), "do not match");
  }
  // A base record cut off, or one too many.
  bad = text;
  bad.erase(BaseAt(r, deltas - 1), kRecipeBaseEntryBytes);
  ExpectCorrupt(Reseal(bad), "do not match");
  bad = text;
  bad.insert(BaseAt(r, deltas), std::string(kRecipeBaseEntryBytes, '\1'));
  ExpectCorrupt(Reseal(bad), "do not match");
}

TEST(RecipeDelta, FlagsMustMatchDeltaCount) {
  const Recipe r = WithDeltas();
  const std::string text = EncodeRecipe(r);
  std::string bad = text;
  SetU32(bad, EntryAt(r, FirstDelta(r, false)) + 16, 2);  // one delta flag too many
  ExpectCorrupt(Reseal(bad), "more delta entries than delta_count");
  bad = text;
  SetU32(bad, EntryAt(r, FirstDelta(r)) + 16, 0);  // one too few
  ExpectCorrupt(Reseal(bad), "entries are delta chunks");
  bad = text;
  SetU32(bad, EntryAt(r, FirstDelta(r)) + 16, 4);
  ExpectCorrupt(Reseal(bad), "unknown flags 4");
}

TEST(RecipeDelta, EntryAndBaseChecks) {
  const Recipe good = WithDeltas();
  const size_t i = FirstDelta(good);
  const std::string at = "chunk " + std::to_string(i) + ": ";
  Recipe r = good;
  r.chunks[i].base_hash = {};
  ExpectCorrupt(EncodeRecipe(r), at + "delta base hash is all zero");
  r = good;
  r.chunks[i].base_hash = r.chunks[i].hash;
  ExpectCorrupt(EncodeRecipe(r), at + "delta base is the chunk itself");
  for (uint32_t len : {0u, r.params.max_bytes + 1, 0xffff'ffffu}) {
    r = good;
    r.chunks[i].base_length = len;
    ExpectCorrupt(EncodeRecipe(r), at + "delta base length " + std::to_string(len));
  }
  r = good;
  r.chunks[i].base_length = r.params.max_bytes;  // the largest allowed
  EXPECT_TRUE(DecodeRecipe(Bytes(EncodeRecipe(r))).has_value());
  r = good;
  r.chunks[i].stored_length = 0;
  ExpectCorrupt(EncodeRecipe(r), at + "stored_length 0");
  r = good;
  r.chunks[i].stored_length = static_cast<uint32_t>(MaxStoredBytes(r.chunks[i].length) + 1);
  ExpectCorrupt(EncodeRecipe(r), "impossible");
  // A hole flagged delta too.
  std::string text = EncodeRecipe(good);
  size_t hole = 0;
  while (!good.chunks[hole].hole)
    ++hole;
  SetU32(text, EntryAt(good, hole) + 16, 3);
  ExpectCorrupt(Reseal(text), "both a hole and a delta chunk");
}

}  // namespace
}  // namespace modelswap::chunk
