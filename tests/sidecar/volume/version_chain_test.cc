// ResolveChain over whole and chunked layers: newest first, every link checked, errors naming the
// delta and the base it needs; bounded (an over-long chain is an error, never a long walk);
// ReadVersionHeader of a chunked version from its first chunks only; DeltasOn.
#include "sidecar/volume/version_chain.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "tests/sidecar/volume/chain_files.h"

namespace modelswap {
namespace {

class VersionChainTest : public ::testing::Test {
 protected:
  Result<std::vector<ChainLayer>> Resolve(const std::string& v) {
    return ResolveChain(DefaultEnv(), vol_.root(), "ranker", v);
  }
  // A chunked full v1 and a whole-file delta v2 on it; v1's recipe, whose chunks a test damages
  // (the header v2's resolution reads is in them).
  Result<chunk::Recipe> ChunkedBaseUnderADelta() {
    const uint64_t s1 = vol_.Full("v1", true);
    vol_.Delta("v2", "v1", s1, 1, false);
    return chunk::ReadRecipeBeneath(DefaultEnv(), vol_.root(), chunk::RecipeRel("ranker", "v1"));
  }
  testing::ChainVolume vol_;
};

std::string Msg(const Result<std::vector<ChainLayer>>& r) {
  return r ? std::string("(resolved)") : r.error().message();
}

TEST_F(VersionChainTest, AFullVersionIsAChainOfOneInEitherLayout) {
  const uint64_t whole = vol_.Full("v1", false);
  const uint64_t chunked = vol_.Full("v2", true);
  auto a = Resolve("v1");
  ASSERT_TRUE(a.has_value()) << Msg(a);
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0].checksum, FormatChecksum(whole));
  EXPECT_FALSE((*a)[0].delta);
  EXPECT_TRUE((*a)[0].recipe.empty());
  EXPECT_EQ((*a)[0].file, "versions/v1.msf");
  auto b = Resolve("v2");
  ASSERT_TRUE(b.has_value()) << Msg(b);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].checksum, FormatChecksum(chunked));
  EXPECT_EQ((*b)[0].recipe, "versions/v2.recipe");
  EXPECT_GT((*b)[0].bytes, 3u * 4096);
  auto missing = Resolve("v9");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

TEST_F(VersionChainTest, ResolvesNewestFirstAcrossLayouts) {
  const uint64_t s1 = vol_.Full("v1", /*chunked=*/true);
  const uint64_t s2 = vol_.Delta("v2", "v1", s1, 1, /*chunked=*/false);
  const uint64_t s3 = vol_.Delta("v3", "v2", s2, 2, /*chunked=*/true);
  auto header = ReadVersionHeader(DefaultEnv(), vol_.root(), "ranker", "v3");
  ASSERT_TRUE(header.has_value()) << header.error().ToString();
  EXPECT_TRUE(header->delta);
  EXPECT_EQ(header->base_version, "v2");
  EXPECT_EQ(header->base_checksum, s2);
  EXPECT_EQ(header->chain_depth, 2u);
  EXPECT_EQ(header->tombstone_count, 1u);
  EXPECT_EQ(header->header_checksum, s3);

  auto chain = Resolve("v3");
  ASSERT_TRUE(chain.has_value()) << Msg(chain);
  ASSERT_EQ(chain->size(), 3u);
  const std::vector<ChainLayer>& c = *chain;
  EXPECT_EQ(c[0].version, "v3");
  EXPECT_EQ(c[1].version, "v2");
  EXPECT_EQ(c[2].version, "v1");
  EXPECT_EQ(c[0].chain_depth, 2u);
  EXPECT_EQ(c[1].chain_depth, 1u);
  EXPECT_EQ(c[2].chain_depth, 0u);
  EXPECT_EQ(c[0].base_checksum, FormatChecksum(s2));
  EXPECT_EQ(c[1].base_checksum, FormatChecksum(s1));
  EXPECT_TRUE(c[2].base_version.empty());
  EXPECT_EQ(c[0].recipe, "versions/v3.recipe");
  EXPECT_TRUE(c[1].recipe.empty());
  EXPECT_EQ(c[2].recipe, "versions/v1.recipe");

  std::vector<ManifestLayer> below = ManifestChainOf(c);
  ASSERT_EQ(below.size(), 2u);
  EXPECT_EQ(below[0], (ManifestLayer{"v2", "versions/v2.msf", FormatChecksum(s2), c[1].bytes, ""}));
  EXPECT_EQ(below[1].recipe, "versions/v1.recipe");
  EXPECT_EQ(FormatChain(c).substr(0, 20), "v3 (delta, chunked, ");
  EXPECT_NE(FormatChain(c).find(") -> v2 (delta, "), std::string::npos);
}

TEST_F(VersionChainTest, AMissingBaseIsNamedWithTheDeltaNeedingIt) {
  vol_.Delta("v8", "v7", 0xabcdef, 1, false);
  auto r = Resolve("v8");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.error().message(),
            "delta v8 needs base v7 (" + FormatChecksum(0xabcdef) + "), which is missing");
}

TEST_F(VersionChainTest, ABaseWithAnotherChecksumIsAMismatch) {
  const uint64_t s1 = vol_.Full("v1", false, 300, "a");
  vol_.Delta("v2", "v1", s1, 1, true);
  // v1 written again with other content under the same name.
  std::filesystem::remove(VersionPath(vol_.root(), "ranker", "v1"));
  const uint64_t other = vol_.Full("v1", false, 300, "b");
  ASSERT_NE(other, s1);
  auto r = Resolve("v2");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_EQ(r.error().message(), "delta v2 needs base v1 " + FormatChecksum(s1) +
                                     ", but v1 on the volume is " + FormatChecksum(other) +
                                     " (another version under that name)");
}

TEST_F(VersionChainTest, ABaseNamingAnotherModelIsRefused) {
  testing::LayerSpec foreign{"v1", {{"a", "b"}}, {}, std::nullopt, false, "other"};
  const uint64_t s1 = vol_.Put(foreign);
  vol_.Delta("v2", "v1", s1, 1, false);
  auto r = Resolve("v2");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(Msg(r).find("delta v2 needs base v1"), std::string::npos) << Msg(r);
  EXPECT_NE(Msg(r).find("header names model \"other\""), std::string::npos) << Msg(r);
}

TEST_F(VersionChainTest, AWrongChainDepthIsRefused) {
  const uint64_t s1 = vol_.Full("v1", false);
  vol_.Delta("v2", "v1", s1, 2, false);
  auto r = Resolve("v2");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(Msg(r).find("delta v2 says chain depth 2 but lies 1 delta(s) above its full base v1"),
            std::string::npos)
      << Msg(r);
}

TEST_F(VersionChainTest, EightLayersResolveANinthIsTooLong) {
  // Depths that lie (all 1) so a chain longer than the format allows can be built at all: the
  // walk must stop at kMaxChainLayers headers, before any depth is compared.
  uint64_t sum = vol_.Full("d0", false, 20);
  for (int i = 1; i <= 8; ++i) {
    sum = vol_.Delta("d" + std::to_string(i), "d" + std::to_string(i - 1), sum, 1, i % 2 == 0);
  }
  auto r = Resolve("d8");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(Msg(r),
            "chain of ranker/d8 has more than 8 layers: delta d1 still names base d0 (the limit "
            "is 7 deltas on a full version)");
  // d7 is 8 layers (7 deltas): the bound is not what refuses it, its lying depth is.
  auto seven = Resolve("d7");
  ASSERT_FALSE(seven.has_value());
  EXPECT_NE(Msg(seven).find("delta d7 says chain depth 1 but lies 7"), std::string::npos)
      << Msg(seven);
}

TEST_F(VersionChainTest, ACycleIsAnErrorNotALoop) {
  // v2 first, on a "v1" of any checksum; then a v1 that is a delta on that very v2. Every link's
  // checksum holds from v1 down, so only the cycle check stops the walk.
  const uint64_t s2 = vol_.Delta("v2", "v1", 0x1234, 1, false);
  vol_.Delta("v1", "v2", s2, 2, true);
  auto r = Resolve("v1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_EQ(Msg(r),
            "chain of ranker/v1 is a cycle: delta v2 names v1, which is above it in the "
            "chain");
}

TEST_F(VersionChainTest, SevenDeltasWithTrueDepthsResolve) {
  uint64_t sum = vol_.Full("d0", true, 20);
  for (uint32_t i = 1; i <= 7; ++i) {
    sum = vol_.Delta("d" + std::to_string(i), "d" + std::to_string(i - 1), sum, i, i % 2 == 1);
  }
  auto r = Resolve("d7");
  ASSERT_TRUE(r.has_value()) << Msg(r);
  EXPECT_EQ(r->size(), 8u);
  EXPECT_EQ(r->back().version, "d0");
  EXPECT_EQ(ManifestChainOf(*r).size(), kMaxManifestChain);
}

TEST_F(VersionChainTest, AChunkedHeaderIsCheckedChunkByChunk) {
  auto recipe = ChunkedBaseUnderADelta();
  ASSERT_TRUE(recipe.has_value());
  // The chunk holding the header's first bytes replaced by another chunk's file (a valid zstd
  // frame of other bytes): the store's hash check must catch it.
  const chunk::RecipeChunk& first = recipe->chunks.front();
  ASSERT_FALSE(first.hole);
  std::string other;
  for (size_t i = 1; i < recipe->chunks.size() && other.empty(); ++i) {
    if (!recipe->chunks[i].hole)
      other = vol_.root() + "/" + chunk::ChunkRel(recipe->chunks[i].hash);
  }
  ASSERT_FALSE(other.empty());
  const std::string path = vol_.root() + "/" + chunk::ChunkRel(first.hash);
  std::filesystem::copy_file(other, path, std::filesystem::copy_options::overwrite_existing);
  auto r = Resolve("v2");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(Msg(r).find("delta v2 needs base v1"), std::string::npos) << Msg(r);
  EXPECT_NE(Msg(r).find(chunk::ToHex(first.hash)), std::string::npos) << Msg(r);
}

TEST_F(VersionChainTest, AMissingHeaderChunkIsDamageNotAMissingBase) {
  auto recipe = ChunkedBaseUnderADelta();
  ASSERT_TRUE(recipe.has_value());
  const chunk::RecipeChunk& first = recipe->chunks.front();
  ASSERT_TRUE(std::filesystem::remove(vol_.root() + "/" + chunk::ChunkRel(first.hash)));
  auto r = Resolve("v2");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(Msg(r).find("delta v2 needs base v1"), std::string::npos) << Msg(r);
  EXPECT_NE(
      Msg(r).find("chunk " + chunk::ToHex(first.hash) + " of its header is missing from the store"),
      std::string::npos)
      << Msg(r);
}

TEST_F(VersionChainTest, DeltasOnListsTheVersionsNamingABase) {
  const uint64_t s1 = vol_.Full("v1", false);
  const uint64_t s2 = vol_.Delta("v2", "v1", s1, 1, true);
  vol_.Delta("v3", "v2", s2, 2, false);
  vol_.Delta("v2b", "v1", s1, 1, false);
  vol_.Full("v4", true);
  auto on1 = DeltasOn(DefaultEnv(), vol_.root(), "ranker", "v1");
  ASSERT_TRUE(on1.has_value()) << on1.error().ToString();
  EXPECT_EQ(*on1, (std::vector<std::string>{"v2", "v2b"}));
  EXPECT_EQ(*DeltasOn(DefaultEnv(), vol_.root(), "ranker", "v2"), std::vector<std::string>{"v3"});
  EXPECT_TRUE(DeltasOn(DefaultEnv(), vol_.root(), "ranker", "v3")->empty());
  EXPECT_TRUE(DeltasOn(DefaultEnv(), vol_.root(), "ranker", "v4")->empty());
  EXPECT_TRUE(DeltasOn(DefaultEnv(), vol_.root(), "nomodel", "v1")->empty());
}

}  // namespace
}  // namespace modelswap
