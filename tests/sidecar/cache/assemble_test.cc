// Assemble in one process: a fresh cache, a second call, holes, ranges from the previous
// version, and every failure path (corrupt chunks, a missing chunk, bad recipes).
#include <sys/stat.h>

#include "sidecar/cache/hold.h"
#include "tests/sidecar/cache/cache_fixture.h"

namespace modelswap::cache::testing {
namespace {

TEST_F(CacheTest, AssemblesFromAnEmptyCacheThenReusesTheFile) {
  Version v = Make({});
  auto got = Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->path, FinalPath(v));
  EXPECT_EQ(ReadWhole(got->path), v.bytes);
  EXPECT_EQ(got->stats.chunks_total, v.recipe.chunks.size());
  EXPECT_EQ(got->stats.chunks_fetched, UniqueDataChunks(v.recipe));
  EXPECT_EQ(static_cast<size_t>(fetches_.load()), UniqueDataChunks(v.recipe));
  EXPECT_EQ(got->stats.chunks_fetched + got->stats.chunks_from_cache + got->stats.holes,
            v.recipe.chunks.size());
  EXPECT_FALSE(got->stats.already_assembled);
  EXPECT_TRUE(got->hold.held());
  struct stat st;
  ASSERT_EQ(::stat(got->path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_FALSE(HasTemp("ranker"));

  auto again = Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->stats.already_assembled);
  EXPECT_EQ(again->stats.chunks_fetched, 0u);
  EXPECT_EQ(static_cast<size_t>(fetches_.load()), UniqueDataChunks(v.recipe));
}

TEST_F(CacheTest, HolesStayHoles) {
  Version v = Make({.zero_value_bytes = 1 << 20});
  auto got = Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  ASSERT_GT(got->stats.holes, 0u);
  EXPECT_GE(got->stats.hole_bytes, 900u << 10);
  EXPECT_EQ(ReadWhole(got->path), v.bytes);
  struct stat st;
  ASSERT_EQ(::stat(got->path.c_str(), &st), 0);
  // Allocated bytes: the data, not the megabyte of zeros (one block of slack per hole edge).
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512,
            v.bytes.size() - got->stats.hole_bytes + 8 * 4096);
}

TEST_F(CacheTest, UnchangedRangesComeFromThePreviousVersion) {
  Version v1 = Make({.entries = 400});
  Version v2 = Make({.version = "v2", .entries = 400, .changed_from = 200, .changed_to = 220});
  ASSERT_TRUE(Assemble(DefaultEnv(), Options(), v1.recipe, CountingFetch()).has_value());
  int before = fetches_.load();
  auto got = Assemble(DefaultEnv(), Options(), v2.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(ReadWhole(got->path), v2.bytes);
  EXPECT_EQ(got->stats.previous_version, "v1");
  EXPECT_GT(got->stats.chunks_from_previous, DataChunks(v2.recipe) / 2);
  EXPECT_EQ(got->stats.chunks_fetched, static_cast<uint64_t>(fetches_.load() - before));
  EXPECT_LT(got->stats.chunks_fetched, DataChunks(v2.recipe) / 4);
  EXPECT_EQ(got->stats.chunks_fetched + got->stats.chunks_from_cache +
                got->stats.chunks_from_previous + got->stats.holes,
            v2.recipe.chunks.size());
  EXPECT_EQ(got->stats.bytes_fetched + got->stats.bytes_from_cache +
                got->stats.bytes_from_previous + got->stats.hole_bytes,
            v2.recipe.file_bytes);
}

TEST_F(CacheTest, AChunkCorruptOnceIsFetchedAgain) {
  Version v = Make({});
  chunk::ChunkHash bad = DataChunk(v.recipe, 1).hash;
  int bad_fetches = 0;
  auto fetch = [&](const chunk::RecipeChunk& c, std::span<const std::byte>,
                   std::span<std::byte> out) -> Status {
    MS_RETURN_IF_ERROR(FetchFromDir(volume(), c.hash, out));
    if (c.hash == bad && bad_fetches++ == 0) out[0] ^= std::byte{1};
    return Ok();
  };
  auto got = Assemble(DefaultEnv(), Options(), v.recipe, fetch);
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(bad_fetches, 2);
  EXPECT_EQ(got->stats.refetches, 1u);
  EXPECT_EQ(ReadWhole(got->path), v.bytes);
}

TEST_F(CacheTest, AChunkCorruptTwiceFailsNamingIt) {
  Version v = Make({});
  chunk::ChunkHash bad = DataChunk(v.recipe, 2).hash;
  auto fetch = [&](const chunk::RecipeChunk& c, std::span<const std::byte>,
                   std::span<std::byte> out) -> Status {
    MS_RETURN_IF_ERROR(FetchFromDir(volume(), c.hash, out));
    if (c.hash == bad) out[out.size() / 2] ^= std::byte{0x40};
    return Ok();
  };
  auto got = Assemble(DefaultEnv(), Options(), v.recipe, fetch);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
  EXPECT_NE(got.error().message().find(chunk::ToHex(bad)), std::string::npos)
      << got.error().message();
  EXPECT_FALSE(Exists(FinalPath(v)));
  EXPECT_FALSE(HasTemp("ranker"));
  EXPECT_FALSE(Exists(ChunkPath(cache_dir(), bad)));
}

TEST_F(CacheTest, AMissingChunkFailsNamingIt) {
  Version v = Make({});
  chunk::ChunkHash gone = DataChunk(v.recipe, 3).hash;
  ASSERT_EQ(::unlink((volume() + "/" + chunk::ToHex(gone)).c_str()), 0);
  auto got = Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kNotFound);
  EXPECT_NE(got.error().message().find(chunk::ToHex(gone)), std::string::npos);
  EXPECT_FALSE(Exists(FinalPath(v)));
  EXPECT_FALSE(HasTemp("ranker"));
}

TEST_F(CacheTest, ARecipeWithAGapIsRejectedBeforeAnyFetch) {
  Version v = Make({});
  chunk::Recipe r = v.recipe;
  r.chunks[1].offset += 1;
  auto got = Assemble(DefaultEnv(), Options(), r, CountingFetch());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
  EXPECT_NE(got.error().message().find("chunk 1"), std::string::npos) << got.error().message();
  EXPECT_EQ(fetches_.load(), 0);

  r = v.recipe;
  r.model = "../etc";
  got = Assemble(DefaultEnv(), Options(), r, CountingFetch());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
}

TEST_F(CacheTest, AFileFailingTheMsfCheckIsNeverPublished) {
  Version v = Make({});
  chunk::Recipe r = v.recipe;
  r.msf_checksum ^= 1;  // the bytes are a valid .msf, but not the one the recipe promises
  auto got = Assemble(DefaultEnv(), Options(), r, CountingFetch());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
  EXPECT_NE(got.error().message().find("header checksum"), std::string::npos)
      << got.error().message();
  EXPECT_FALSE(Exists(FinalPath(Version{"", r, {}})));
  EXPECT_FALSE(HasTemp("ranker"));

  // Chunks whose bytes hash right but form a broken .msf: swap two data chunks' places.
  Version w = Make({.version = "w"});
  chunk::Recipe bad = w.recipe;
  size_t i = 1;
  while (i + 1 < bad.chunks.size() && (bad.chunks[i].hole || bad.chunks[i + 1].hole ||
                                       bad.chunks[i].hash == bad.chunks[i + 1].hash)) {
    ++i;
  }
  ASSERT_LT(i + 1, bad.chunks.size());
  uint64_t at = bad.chunks[i].offset;
  std::swap(bad.chunks[i], bad.chunks[i + 1]);
  bad.chunks[i].offset = at;
  bad.chunks[i + 1].offset = at + bad.chunks[i].length;
  got = Assemble(DefaultEnv(), Options(), bad, CountingFetch());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
  EXPECT_FALSE(HasTemp("ranker"));
}

TEST_F(CacheTest, AChunkDamagedInTheCacheIsFetchedAgain) {
  Version v = Make({});
  ASSERT_TRUE(Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch()).has_value());
  // Another model with the same data chunks (no previous version): they come from the chunk
  // cache, where one was damaged.
  Version w = Make({.model = "other"});
  ASSERT_TRUE(Exists(ChunkPath(cache_dir(), DataChunk(w.recipe, DataChunks(w.recipe) / 2).hash)));
  std::string victim = ChunkPath(cache_dir(), DataChunk(w.recipe, DataChunks(w.recipe) / 2).hash);
  ASSERT_EQ(::chmod(victim.c_str(), 0644), 0);
  std::vector<std::byte> junk(100, std::byte{7});
  WriteWhole(victim, junk);
  CacheOptions o = Options();
  auto got = Assemble(DefaultEnv(), o, w.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(ReadWhole(got->path), w.bytes);
  EXPECT_EQ(got->stats.chunks_fetched, 3u);  // the damaged one and the two header chunks
  EXPECT_EQ(ReadWhole(victim).size(), DataChunk(w.recipe, DataChunks(w.recipe) / 2).length);
}

TEST_F(CacheTest, ProgressReachesTheTotal) {
  Version v = Make({});
  uint64_t last = 0, total = 0;
  int calls = 0;
  auto got =
      Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch(), [&](const AssembleProgress& p) {
        ++calls;
        if (p.phase == "chunks") {
          EXPECT_GE(p.bytes_done, last);
          last = p.bytes_done;
          total = p.bytes_total;
        }
      });
  ASSERT_TRUE(got.has_value());
  EXPECT_GT(calls, 1);
  EXPECT_EQ(last, total);
}

TEST_F(CacheTest, HoldVersionRefusesOtherPathsAndEvictedFiles) {
  Version v = Make({});
  auto got = Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value());
  auto h = HoldVersion(DefaultEnv(), got->path);
  ASSERT_TRUE(h.has_value()) << h.error().ToString();
  EXPECT_GE(h->fd(), 0);
  EXPECT_EQ(HoldVersion(DefaultEnv(), "/etc/passwd").error().code(), Code::kInvalidArgument);
  std::string other = JoinPath(ModelCacheDir(cache_dir(), "ranker"), AssembledFileName("zz", 5));
  EXPECT_EQ(HoldVersion(DefaultEnv(), other).error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace modelswap::cache::testing
