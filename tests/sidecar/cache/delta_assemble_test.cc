// Assembling versions whose new chunks are delta chunks (chunk_store.h) from a real ChunkStore:
// byte-identical results with each delta's base taken from the previous assembled version, the
// chunk cache or the volume (delta_base.h), in that file's order, the counters saying which, and
// the failure paths (a damaged base in the previous version, a corrupt delta file, a missing
// delta file, a missing base).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>

#include "tests/sidecar/cache/cache_fixture.h"
#include "tests/sidecar/cache/delta_test_util.h"

namespace modelswap::cache::testing {
namespace {

class DeltaAssembleTest : public CacheTest {
 protected:
  void SetUp() override {
    store_ = std::make_shared<chunk::ChunkStore>(DefaultEnv(), store_root());
    // Eight values of 400 changed in place: each leaves most of its chunk as it was.
    v1_ = MakeVersion(work(), work() + "/raw", {.entries = 400});
    v2_ = MakeVersion(work(), work() + "/raw",
                      {.version = "v2", .entries = 400, .changed_every = 50});
    v1_.recipe = PutVersion(store_.get(), v1_, nullptr);
    v2_.recipe = PutVersion(store_.get(), v2_, &v1_);
    ASSERT_GE(DeltaHashes(v2_.recipe).size(), 4u) << "the test data should make deltas";
    // Exact counts below assume each delta entry is a distinct chunk.
    ASSERT_EQ(DeltaHashes(v2_.recipe).size(), DeltaEntries(v2_.recipe));
    first_delta_ = *std::find_if(v2_.recipe.chunks.begin(), v2_.recipe.chunks.end(),
                                 [](const chunk::RecipeChunk& c) { return c.delta; });
  }

  std::string store_root() const { return tmp_ / "store"; }

  // The store's source, counting calls by kind and calls for one chunk.
  ChunkSourceFn Source() {
    return [this, real = ChunkStoreSource(store_)](const chunk::RecipeChunk& c,
                                                   std::span<const std::byte> base,
                                                   std::span<std::byte> out) -> Status {
      (c.delta ? delta_calls_ : whole_calls_).fetch_add(1);
      if (c.hash == watched_) watched_calls_.fetch_add(1);
      Status st = real(c, base, out);
      if (st && c.hash == watched_ && corrupt_watched_ > 0) {
        --corrupt_watched_;
        out[out.size() / 2] ^= std::byte{0x20};
      }
      return st;
    };
  }

  Result<Assembled> AssembleV(const Version& v) {
    return Assemble(DefaultEnv(), Options(), v.recipe, Source());
  }

  // The store's delta file for entry c.
  std::string DeltaFile(const chunk::RecipeChunk& c) const {
    return JoinPath(store_root(), chunk::DeltaChunkRel(c.hash, c.base_hash));
  }

  void RemoveCachedChunks() { std::filesystem::remove_all(JoinPath(cache_dir(), "chunks")); }
  // Assembled files (and recipes) of the model: no previous version to use.
  void RemoveAssembled(const std::string& model) {
    std::filesystem::remove_all(ModelCacheDir(cache_dir(), model));
  }

  uint64_t BaseBytes() const {
    std::map<chunk::ChunkHash, uint32_t> b;
    for (const auto& c : v2_.recipe.chunks) {
      if (c.delta) b[c.base_hash] = c.base_length;
    }
    uint64_t n = 0;
    for (const auto& [h, len] : b)
      n += len;
    return n;
  }

  std::shared_ptr<chunk::ChunkStore> store_;
  Version v1_, v2_;
  chunk::RecipeChunk first_delta_;
  std::atomic<int> whole_calls_{0}, delta_calls_{0}, watched_calls_{0};
  chunk::ChunkHash watched_;
  std::atomic<int> corrupt_watched_{0};
};

TEST_F(DeltaAssembleTest, BasesComeFromThePreviousVersion) {
  ASSERT_TRUE(AssembleV(v1_).has_value());
  RemoveCachedChunks();  // the bases are now only in v1's assembled file (and on the volume)
  whole_calls_ = 0;
  auto got = AssembleV(v2_);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(ReadWhole(got->path), v2_.bytes);
  const AssembleStats& s = got->stats;
  EXPECT_EQ(s.previous_version, "v1");
  EXPECT_EQ(s.delta_chunks_fetched, DeltaHashes(v2_.recipe).size());
  EXPECT_EQ(s.bases_from_previous, s.delta_chunks_fetched);
  EXPECT_EQ(s.bases_from_cache, 0u);
  EXPECT_EQ(s.bases_fetched, 0u);
  EXPECT_EQ(s.base_bytes_fetched, 0u);
  EXPECT_EQ(static_cast<uint64_t>(delta_calls_), s.delta_chunks_fetched);
  EXPECT_EQ(static_cast<uint64_t>(whole_calls_), s.chunks_fetched - s.delta_chunks_fetched);
  EXPECT_EQ(s.chunks_fetched + s.chunks_from_cache + s.chunks_from_previous + s.holes,
            v2_.recipe.chunks.size());
}

TEST_F(DeltaAssembleTest, BasesComeFromTheChunkCache) {
  ASSERT_TRUE(AssembleV(v1_).has_value());
  RemoveAssembled("ranker");  // v1's chunks stay in the chunk cache
  whole_calls_ = 0;
  auto got = AssembleV(v2_);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(ReadWhole(got->path), v2_.bytes);
  const AssembleStats& s = got->stats;
  EXPECT_EQ(s.previous_version, "");
  EXPECT_EQ(s.chunks_from_previous, 0u);
  EXPECT_EQ(s.delta_chunks_fetched, DeltaHashes(v2_.recipe).size());
  EXPECT_EQ(s.bases_from_cache, s.delta_chunks_fetched);
  EXPECT_EQ(s.bases_from_previous, 0u);
  EXPECT_EQ(s.bases_fetched, 0u);
  EXPECT_EQ(static_cast<uint64_t>(delta_calls_), s.delta_chunks_fetched);
  EXPECT_EQ(static_cast<uint64_t>(whole_calls_), s.chunks_fetched - s.delta_chunks_fetched);
}

TEST_F(DeltaAssembleTest, TheChunkCacheIsPreferredToThePreviousVersion) {
  ASSERT_TRUE(AssembleV(v1_).has_value());  // the bases are in both
  auto got = AssembleV(v2_);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(ReadWhole(got->path), v2_.bytes);
  EXPECT_EQ(got->stats.previous_version, "v1");
  EXPECT_EQ(got->stats.bases_from_cache, got->stats.delta_chunks_fetched);
  EXPECT_EQ(got->stats.bases_from_previous, 0u);
  EXPECT_EQ(got->stats.bases_fetched, 0u);
}

TEST_F(DeltaAssembleTest, ABaseDamagedInThePreviousVersionIsFetchedInstead) {
  auto v1 = AssembleV(v1_);
  ASSERT_TRUE(v1.has_value());
  std::string v1_path = v1->path;
  v1->hold.Release();
  RemoveCachedChunks();
  // One byte of the first delta's base, where v1 has it (the ranges v2 copies are elsewhere).
  const auto& base =
      *std::find_if(v1_.recipe.chunks.begin(), v1_.recipe.chunks.end(),
                    [&](const chunk::RecipeChunk& c) { return c.hash == first_delta_.base_hash; });
  ASSERT_EQ(::chmod(v1_path.c_str(), 0644), 0);
  std::vector<std::byte> damaged(v1_.bytes.begin() + static_cast<ptrdiff_t>(base.offset),
                                 v1_.bytes.begin() + static_cast<ptrdiff_t>(base.offset + 1));
  damaged[0] ^= std::byte{0x01};
  int fd = ::open(v1_path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, damaged.data(), 1, static_cast<off_t>(base.offset)), 1);
  ::close(fd);

  auto got = AssembleV(v2_);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(ReadWhole(got->path), v2_.bytes);
  EXPECT_EQ(got->stats.previous_version, "v1");
  EXPECT_GE(got->stats.bases_fetched, 1u);
  EXPECT_EQ(got->stats.bases_fetched + got->stats.bases_from_previous + got->stats.bases_from_cache,
            got->stats.delta_chunks_fetched);
  EXPECT_TRUE(Exists(ChunkPath(cache_dir(), first_delta_.base_hash)));
}

TEST_F(DeltaAssembleTest, BasesComeFromTheVolumeAndAreCached) {
  auto got = AssembleV(v2_);  // no previous version, empty cache
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(ReadWhole(got->path), v2_.bytes);
  const AssembleStats& s = got->stats;
  EXPECT_EQ(s.delta_chunks_fetched, DeltaHashes(v2_.recipe).size());
  // Each base fetched once; a delta sharing a base fetched for another finds it cached.
  EXPECT_EQ(s.bases_fetched, BaseHashes(v2_.recipe).size());
  EXPECT_EQ(s.bases_fetched + s.bases_from_cache, s.delta_chunks_fetched);
  EXPECT_EQ(s.bases_from_previous, 0u);
  EXPECT_EQ(s.base_bytes_fetched, BaseBytes());
  EXPECT_EQ(static_cast<uint64_t>(delta_calls_), s.delta_chunks_fetched);
  EXPECT_EQ(static_cast<uint64_t>(whole_calls_),
            s.chunks_fetched - s.delta_chunks_fetched + s.bases_fetched);
  EXPECT_EQ(s.chunks_fetched + s.chunks_from_cache + s.holes, v2_.recipe.chunks.size());
  for (const auto& b : BaseHashes(v2_.recipe))
    EXPECT_TRUE(Exists(ChunkPath(cache_dir(), b))) << chunk::ToHex(b);

  // The cache keeps each delta entry's own bytes: assembling it again needs no base at all.
  got->hold.Release();
  RemoveAssembled("ranker");
  for (const auto& b : BaseHashes(v2_.recipe))
    ASSERT_TRUE(store_->Remove(b).has_value());
  auto again = AssembleV(v2_);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(ReadWhole(again->path), v2_.bytes);
  EXPECT_EQ(again->stats.chunks_fetched, 0u);
  EXPECT_EQ(again->stats.bases_from_cache + again->stats.bases_fetched, 0u);
}

TEST_F(DeltaAssembleTest, ADeltaCorruptOnceIsFetchedAgain) {
  watched_ = first_delta_.hash;
  corrupt_watched_ = 1;
  auto got = AssembleV(v2_);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(watched_calls_.load(), 2);
  EXPECT_EQ(got->stats.refetches, 1u);
  EXPECT_EQ(ReadWhole(got->path), v2_.bytes);
}

TEST_F(DeltaAssembleTest, ACorruptDeltaFileIsFetchedTwiceThenRejectedNamingItAndItsBase) {
  ASSERT_TRUE(AssembleV(v1_).has_value());
  std::string file = DeltaFile(first_delta_);
  auto size = std::filesystem::file_size(file);
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  WriteWhole(file, std::vector<std::byte>(size, std::byte{0x5a}));
  watched_ = first_delta_.hash;
  auto got = AssembleV(v2_);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption) << got.error().ToString();
  EXPECT_NE(got.error().message().find(chunk::ToHex(first_delta_.hash)), std::string::npos)
      << got.error().message();
  EXPECT_NE(got.error().message().find(chunk::ToHex(first_delta_.base_hash)), std::string::npos)
      << got.error().message();
  EXPECT_EQ(watched_calls_.load(), 2);
  EXPECT_FALSE(Exists(FinalPath(v2_)));
  EXPECT_TRUE(Exists(FinalPath(v1_))) << "the version before stays";
  EXPECT_FALSE(HasTemp("ranker"));
  EXPECT_FALSE(Exists(ChunkPath(cache_dir(), first_delta_.hash)));
}

TEST_F(DeltaAssembleTest, AMissingDeltaFileIsRejectedNamingItAndItsBase) {
  ASSERT_EQ(::unlink(DeltaFile(first_delta_).c_str()), 0);
  auto got = AssembleV(v2_);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kNotFound) << got.error().ToString();
  EXPECT_NE(got.error().message().find(chunk::ToHex(first_delta_.hash)), std::string::npos)
      << got.error().message();
  EXPECT_NE(got.error().message().find(chunk::ToHex(first_delta_.base_hash)), std::string::npos)
      << got.error().message();
  EXPECT_FALSE(Exists(FinalPath(v2_)));
  EXPECT_FALSE(HasTemp("ranker"));
}

TEST_F(DeltaAssembleTest, AMissingBaseIsRejectedNamingIt) {
  ASSERT_TRUE(store_->Remove(first_delta_.base_hash).has_value());
  auto got = AssembleV(v2_);  // no previous version, empty cache: only the volume has bases
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kNotFound) << got.error().ToString();
  EXPECT_NE(got.error().message().find("base of chunk"), std::string::npos)
      << got.error().message();
  EXPECT_NE(got.error().message().find(chunk::ToHex(first_delta_.base_hash)), std::string::npos)
      << got.error().message();
  EXPECT_FALSE(Exists(FinalPath(v2_)));
  EXPECT_FALSE(HasTemp("ranker"));
}

TEST_F(DeltaAssembleTest, ADeltaEntryWithoutABaseLengthIsRejectedBeforeAnyFetch) {
  chunk::Recipe r = v2_.recipe;
  for (auto& c : r.chunks) {
    if (c.delta) {
      c.base_length = 0;
      break;
    }
  }
  auto got = Assemble(DefaultEnv(), Options(), r, Source());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
  EXPECT_NE(got.error().message().find("base of length 0"), std::string::npos)
      << got.error().message();
  EXPECT_EQ(whole_calls_ + delta_calls_, 0);
}

}  // namespace
}  // namespace modelswap::cache::testing
