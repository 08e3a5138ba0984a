// The recipe format: round trip, and every damaged, truncated or hostile recipe refused with
// kCorruption naming what is wrong.
#include "sidecar/chunk/recipe.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "common/checksum.h"
#include "sidecar/chunk/chunk_store.h"
#include "tests/sidecar/chunk/chunk_test_util.h"
#include "tests/sidecar/chunk/recipe_test_util.h"
#include "tests/testing/temp_dir.h"

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

Recipe Sample() {
  auto data = RandomBytes(2 << 20, 11);
  std::fill(data.begin() + (1 << 20), data.begin() + (1 << 20) + 70'000, std::byte{0});
  MemorySink sink;
  return ChunkBytes(data, "ranker", "v7", 0x1234'5678'9abc'def0ull, {}, sink.sink()).value();
}

TEST(Recipe, RoundTrip) {
  Recipe r = Sample();
  ASSERT_GT(r.chunks.size(), 4u);
  bool has_hole = false;
  for (const auto& c : r.chunks)
    has_hole |= c.hole;
  EXPECT_TRUE(has_hole);
  std::string text = EncodeRecipe(r);
  EXPECT_EQ(text.size(), EntryAt(r, r.chunks.size()) + kRecipeTrailerBytes);
  auto back = DecodeRecipe(Bytes(text));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(*back, r);
  EXPECT_EQ(EncodeRecipe(*back), text);
}

// Recipes without deltas are format 1, byte for byte what the encoder wrote before format 2
// existed: Sample()'s encoding measured with the encoder of the commit before it (ff26ae4).
TEST(Recipe, WithoutDeltasEncodesAsBeforeFormat2) {
  std::string text = EncodeRecipe(Sample());
  EXPECT_EQ(text.size(), 1584u);
  EXPECT_EQ(Xxh3(text), 0x84c4378024a058e1ull);
  EXPECT_EQ(U32At(text, 8), kRecipeFormatVersion);
  EXPECT_EQ(U32At(text, 44), 0u);
}

TEST(Recipe, EmptyFileHasNoChunks) {
  Recipe r;
  r.model = "m";
  r.version = "v";
  auto back = DecodeRecipe(Bytes(EncodeRecipe(r)));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_TRUE(back->chunks.empty());
}

TEST(Recipe, TruncationAtEveryByteRefused) {
  std::string text = EncodeRecipe(Sample());
  for (size_t n = 0; n < text.size(); ++n) {
    auto r = DecodeRecipe(Bytes(text.substr(0, n)));
    ASSERT_FALSE(r.has_value()) << "accepted a recipe cut to " << n << " bytes";
    ASSERT_EQ(r.error().code(), Code::kCorruption) << n;
  }
  ExpectCorrupt(text + std::string(1, '\0'), "chunk_count");  // padded is refused too
}

TEST(Recipe, RandomBitFlipsRefused) {
  std::string text = EncodeRecipe(Sample());
  std::mt19937_64 rng(12);
  for (int i = 0; i < 2000; ++i) {
    std::string bad = text;
    size_t bit = rng() % (bad.size() * 8);
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    auto r = DecodeRecipe(Bytes(bad));
    ASSERT_FALSE(r.has_value()) << "accepted a flip of bit " << bit;
    ASSERT_EQ(r.error().code(), Code::kCorruption);
  }
}

TEST(Recipe, HeaderChecks) {
  std::string text = EncodeRecipe(Sample());
  std::string bad = text;
  bad[0] = 'X';
  ExpectCorrupt(bad, "bad magic");
  bad = text;
  bad[8] = 3;
  ExpectCorrupt(bad, "format version 3 unknown");
  bad = text;
  bad[text.size() - 1] ^= 1;
  ExpectCorrupt(bad, "checksum mismatch");
  bad = text;
  bad[56] = 0;  // model name length 0
  bad[57] = 0;
  ExpectCorrupt(bad, "name lengths");
}

TEST(Recipe, HostileCountRefusedBeforeAllocating) {
  std::string text = EncodeRecipe(Sample());
  for (uint64_t count : {uint64_t{1} << 40, ~uint64_t{0}, uint64_t{1} << 58}) {
    std::string bad = text;
    std::memcpy(bad.data() + 48, &count, 8);
    ExpectCorrupt(Reseal(bad), "chunk_count");
  }
}

TEST(Recipe, NamesChecked) {
  Recipe r = Sample();
  r.model = "Not_A_Dns_Label";
  ExpectCorrupt(EncodeRecipe(r), "model");
  r = Sample();
  r.version = "..";
  ExpectCorrupt(EncodeRecipe(r), "version");
}

TEST(Recipe, ParamsChecked) {
  Recipe r = Sample();
  r.params.avg_bytes = 65535;
  ExpectCorrupt(EncodeRecipe(r), "avg_bytes");
}

TEST(Recipe, EntryChecks) {
  const Recipe good = Sample();
  Recipe r = good;
  r.chunks[2].offset += 1;
  ExpectCorrupt(EncodeRecipe(r), "not contiguous");
  r = good;
  std::swap(r.chunks[1], r.chunks[2]);
  ExpectCorrupt(EncodeRecipe(r), "not contiguous");
  r = good;
  r.chunks[0].length = r.params.max_bytes + 1;
  ExpectCorrupt(EncodeRecipe(r), "over params.max_bytes");
  r = good;
  r.chunks.pop_back();
  ExpectCorrupt(EncodeRecipe(r), "file_bytes");
  r = good;
  r.file_bytes -= 1;
  ExpectCorrupt(EncodeRecipe(r), "ends past file_bytes");
  r = good;
  size_t hole = 0;
  while (!r.chunks[hole].hole)
    ++hole;
  r.chunks[hole].stored_length = 10;
  ExpectCorrupt(EncodeRecipe(r), "a hole with a stored_length");
  r = good;
  r.chunks[hole].hash.bytes[0] = 1;
  ExpectCorrupt(EncodeRecipe(r), "a hole with a hash");
  r = good;
  r.chunks[0].stored_length = 0;
  ExpectCorrupt(EncodeRecipe(r), "stored_length 0");
  r = good;
  r.chunks[0].stored_length = static_cast<uint32_t>(MaxStoredBytes(r.chunks[0].length) + 1);
  ExpectCorrupt(EncodeRecipe(r), "impossible");
  std::string text = EncodeRecipe(good);
  text[EntryAt(good, 1) + 16] = 2;  // an unknown entry flag
  ExpectCorrupt(Reseal(text), "unknown flags");
}

TEST(Recipe, ReadBeneathRoot) {
  modelswap::testing::TempDir dir;
  Recipe r = Sample();
  ASSERT_EQ(RecipeRel("ranker", "v7"), "ranker/versions/v7.recipe");
  ASSERT_TRUE(DefaultEnv()->CreateDirs(dir / "ranker/versions").has_value());
  ASSERT_TRUE(WriteFileAtomic(DefaultEnv(), dir / "ranker/versions/v7.recipe", EncodeRecipe(r))
                  .has_value());
  auto back = ReadRecipeBeneath(DefaultEnv(), dir.path(), RecipeRel("ranker", "v7"));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(*back, r);
  // A symlink in place of the recipe is refused, as is a missing one.
  ASSERT_EQ(::symlink((dir / "ranker/versions/v7.recipe").c_str(),
                      (dir / "ranker/versions/v8.recipe").c_str()),
            0);
  auto link = ReadRecipeBeneath(DefaultEnv(), dir.path(), RecipeRel("ranker", "v8"));
  ASSERT_FALSE(link.has_value());
  EXPECT_EQ(link.error().code(), Code::kPermissionDenied);
  auto missing = ReadRecipeBeneath(DefaultEnv(), dir.path(), RecipeRel("ranker", "v9"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  // A damaged one names its path.
  std::string text = EncodeRecipe(r);
  text[20] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(DefaultEnv(), dir / "ranker/versions/v6.recipe", text).has_value());
  auto bad = ReadRecipeBeneath(DefaultEnv(), dir.path(), RecipeRel("ranker", "v6"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("v6.recipe"), std::string::npos);
}

TEST(Recipe, ReadRefusesOversizedFile) {
  modelswap::testing::TempDir dir;
  ASSERT_TRUE(DefaultEnv()->CreateDirs(dir / "m/versions").has_value());
  // A sparse file just over the cap: refused without reading it all into memory.
  std::string path = dir / "m/versions/v.recipe";
  auto fd = DefaultEnv()->Open(path, OpenMode::kCreateNew);
  ASSERT_TRUE(fd.has_value());
  ASSERT_TRUE(DefaultEnv()->Truncate(*fd, kMaxRecipeBytes + 1).has_value());
  DefaultEnv()->Close(*fd);
  auto r = ReadRecipeBeneath(DefaultEnv(), dir.path(), RecipeRel("m", "v"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace modelswap::chunk
