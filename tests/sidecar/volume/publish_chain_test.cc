// Publishing a delta records its chain in the manifest (whole and chunked layers); a delta whose
// base is missing is not published; removing a version another version needs as its base is
// refused until that delta is gone.
#include <gtest/gtest.h>

#include <fstream>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/volume/manifest.h"
#include "sidecar/volume/version_chain.h"
#include "sidecar/writer/publish.h"
#include "tests/sidecar/volume/chain_files.h"

namespace modelswap {
namespace {

class PublishChainTest : public ::testing::Test {
 protected:
  Result<Manifest> Publish(const std::string& v) {
    return PublishAnyVersion(DefaultEnv(), vol_.root(), "ranker", v);
  }
  Result<bool> Remove(const std::string& v) {
    return RemoveAnyVersion(DefaultEnv(), vol_.root(), "ranker", v);
  }
  testing::ChainVolume vol_;
};

TEST_F(PublishChainTest, PublishingADeltaWritesItsChain) {
  for (bool top_chunked : {false, true}) {
    SCOPED_TRACE(top_chunked ? "chunked top" : "whole top");
    testing::ChainVolume vol;
    const uint64_t s1 = vol.Full("v1", /*chunked=*/true);
    const uint64_t s2 = vol.Delta("v2", "v1", s1, 1, /*chunked=*/false);
    const uint64_t s3 = vol.Delta("v3", "v2", s2, 2, top_chunked);
    auto full = PublishAnyVersion(DefaultEnv(), vol.root(), "ranker", "v1");
    ASSERT_TRUE(full.has_value()) << full.error().ToString();
    EXPECT_TRUE(full->chain.empty());
    auto m = PublishAnyVersion(DefaultEnv(), vol.root(), "ranker", "v3");
    ASSERT_TRUE(m.has_value()) << m.error().ToString();
    auto read = ReadManifest(DefaultEnv(), vol.root(), "ranker");
    ASSERT_TRUE(read.has_value()) << read.error().ToString();
    EXPECT_EQ(read->version, "v3");
    EXPECT_EQ(read->checksum, FormatChecksum(s3));
    EXPECT_EQ(read->recipe, top_chunked ? "versions/v3.recipe" : "");
    ASSERT_EQ(read->chain.size(), 2u);
    EXPECT_EQ(read->chain[0].version, "v2");
    EXPECT_EQ(read->chain[0].checksum, FormatChecksum(s2));
    EXPECT_EQ(read->chain[0].file, "versions/v2.msf");
    EXPECT_TRUE(read->chain[0].recipe.empty());
    EXPECT_EQ(read->chain[1].version, "v1");
    EXPECT_EQ(read->chain[1].checksum, FormatChecksum(s1));
    EXPECT_EQ(read->chain[1].recipe, "versions/v1.recipe");
    EXPECT_GT(read->chain[1].bytes, read->chain[0].bytes);
  }
}

TEST_F(PublishChainTest, ADeltaWithoutItsBaseIsNotPublished) {
  const uint64_t s1 = vol_.Full("v1", false);
  ASSERT_TRUE(Publish("v1").has_value());
  vol_.Delta("v3", "v2", s1, 1, false);  // names a v2 that was never written
  vol_.Delta("v4", "v2", s1, 1, true);
  for (const char* v : {"v3", "v4"}) {
    auto m = Publish(v);
    ASSERT_FALSE(m.has_value()) << v;
    EXPECT_EQ(m.error().code(), Code::kFailedPrecondition) << v;
    EXPECT_NE(m.error().message().find("delta " + std::string(v) + " needs base v2"),
              std::string::npos)
        << m.error().message();
  }
  EXPECT_EQ(ReadManifest(DefaultEnv(), vol_.root(), "ranker")->version, "v1");
}

TEST_F(PublishChainTest, RemovingANeededBaseIsRefusedUntilTheDeltaIsGone) {
  vol_.Full("v0", false);
  ASSERT_TRUE(Publish("v0").has_value());  // the active version is neither of the two below
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "whole");
    const uint64_t s7 = vol_.Full("v7", chunked);
    vol_.Delta("v8", "v7", s7, 1, !chunked);
    auto refused = Remove("v7");
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code(), Code::kFailedPrecondition);
    EXPECT_EQ(refused.error().message(), "v7 is the base of delta v8: remove or compact v8 first");
    // Nothing of v7 was removed.
    EXPECT_TRUE(ResolveChain(DefaultEnv(), vol_.root(), "ranker", "v8").has_value());
    auto delta_gone = Remove("v8");
    ASSERT_TRUE(delta_gone.has_value()) << delta_gone.error().ToString();
    EXPECT_TRUE(*delta_gone);
    auto base_gone = Remove("v7");
    ASSERT_TRUE(base_gone.has_value()) << base_gone.error().ToString();
    EXPECT_TRUE(*base_gone);
  }
}

TEST_F(PublishChainTest, ALayerOfTheActiveDeltaStaysEvenIfTheDeltaIsDamaged) {
  const uint64_t s7 = vol_.Full("v7", false);
  vol_.Delta("v8", "v7", s7, 1, false);
  ASSERT_TRUE(Publish("v8").has_value());
  // v8's header damaged after publish: DeltasOn skips it (it can serve nothing), but the manifest
  // still lists v7 under the active version.
  const std::string v8 = VersionPath(vol_.root(), "ranker", "v8");
  {
    std::fstream f(v8, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  EXPECT_TRUE(DeltasOn(DefaultEnv(), vol_.root(), "ranker", "v7")->empty());
  auto refused = Remove("v7");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message(),
            "version v7 is a layer of the active version v8 (its chain in the manifest)");
}

TEST_F(PublishChainTest, TwoDeltasOnOneBaseAreBothNamed) {
  vol_.Full("v0", false);
  ASSERT_TRUE(Publish("v0").has_value());
  const uint64_t s7 = vol_.Full("v7", false);
  vol_.Delta("v8", "v7", s7, 1, false);
  vol_.Delta("v9", "v7", s7, 1, true);
  auto refused = Remove("v7");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message(),
            "v7 is the base of delta v8, v9: remove or compact them first");
}

}  // namespace
}  // namespace modelswap
