// Chunk GC: keeps referenced and young chunks, keeps everything while a writer is in flight,
// removes old unreferenced ones, and stops on a recipe it cannot read.
#include "sidecar/chunk/chunk_gc.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/chunk/writer_marker.h"
#include "tests/sidecar/chunk/chunk_test_util.h"
#include "tests/testing/fault_env.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::chunk {
namespace {

using testing::RandomBytes;

constexpr int64_t kHour = int64_t{3600} * 1'000'000'000;

class ChunkGcTest : public ::testing::Test {
 protected:
  // Writes a version's chunks and its recipe; returns the chunks it stored.
  std::vector<ChunkHash> WriteVersion(const std::string& model, const std::string& version,
                                      uint64_t seed) {
    auto data = RandomBytes(1 << 20, seed);
    std::vector<ChunkHash> out;
    auto sink = [&](const RecipeChunk& c, std::span<const std::byte> b) -> Result<uint32_t> {
      out.push_back(c.hash);
      MS_ASSIGN_OR_RETURN(PutResult p, store_.Put(c.hash, b, 1));
      return p.stored_length;
    };
    auto r = ChunkBytes(data, model, version, 1, {}, sink);
    EXPECT_TRUE(r.has_value());
    EXPECT_TRUE(env_.CreateDirs(dir_ / (model + "/versions")).has_value());
    EXPECT_TRUE(
        WriteFileAtomic(&env_, dir_ / RecipeRel(model, version), EncodeRecipe(*r)).has_value());
    return out;
  }
  void RemoveRecipe(const std::string& model, const std::string& version) {
    std::filesystem::remove(dir_ / RecipeRel(model, version));
  }
  // Back-dates every file on the volume by ns (the GC compares mtimes with the Env's clock, so
  // this is "ns pass" for everything written so far, and nothing written later).
  void Age(int64_t ns) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.path())) {
      if (!e.is_regular_file()) continue;
      std::filesystem::last_write_time(e.path(),
                                       e.last_write_time() - std::chrono::nanoseconds(ns));
    }
  }
  GcResult Gc(bool dry_run = false) {
    GcOptions o;
    o.grace_ns = kHour;
    o.dry_run = dry_run;
    auto r = CollectGarbage(&env_, dir_.path(), o);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(GcResult{});
  }
  bool Has(const ChunkHash& h) { return store_.Has(h).value(); }

  modelswap::testing::TempDir dir_;
  modelswap::testing::FaultEnv env_;
  ChunkStore store_{&env_, dir_.path()};
};

TEST_F(ChunkGcTest, KeepsReferencedRemovesOldUnreferenced) {
  auto live = WriteVersion("ranker", "v1", 1);
  auto dead = WriteVersion("ranker", "v2", 2);
  RemoveRecipe("ranker", "v2");
  Age(2 * kHour);
  GcResult r = Gc();
  EXPECT_EQ(r.recipes, 1u);
  EXPECT_EQ(r.chunks_removed, dead.size());
  EXPECT_GT(r.bytes_removed, 0u);
  EXPECT_EQ(r.chunks_referenced, live.size());
  for (const auto& h : live)
    EXPECT_TRUE(Has(h));
  for (const auto& h : dead)
    EXPECT_FALSE(Has(h));
  // Nothing left to do; the GC's own marker is gone.
  EXPECT_EQ(Gc().chunks_removed, 0u);
  EXPECT_TRUE(ListMarkers(&env_, dir_.path(), kGcDir)->empty());
}

TEST_F(ChunkGcTest, DryRunRemovesNothing) {
  auto dead = WriteVersion("ranker", "v2", 2);
  RemoveRecipe("ranker", "v2");
  Age(2 * kHour);
  GcResult r = Gc(/*dry_run=*/true);
  EXPECT_EQ(r.chunks_removed, dead.size());
  for (const auto& h : dead)
    EXPECT_TRUE(Has(h));
}

TEST_F(ChunkGcTest, KeepsYoungUnreferenced) {
  auto dead = WriteVersion("ranker", "v2", 2);
  RemoveRecipe("ranker", "v2");
  Age(kHour / 2);
  GcResult r = Gc();
  EXPECT_EQ(r.chunks_removed, 0u);
  EXPECT_EQ(r.chunks_young, dead.size());
  for (const auto& h : dead)
    EXPECT_TRUE(Has(h));
}

TEST_F(ChunkGcTest, KeepsEverythingWhileAFreshWriterMarkerExists) {
  auto dead = WriteVersion("ranker", "v2", 2);
  RemoveRecipe("ranker", "v2");
  Age(2 * kHour);
  auto marker = CreateWriterMarker(&env_, dir_.path(), "ranker", "v3");
  ASSERT_TRUE(marker.has_value()) << marker.error().ToString();
  Age(kHour / 2);  // the marker is half a grace period old: still fresh
  GcResult r = Gc();
  EXPECT_EQ(r.stopped_by_writer, *marker);
  EXPECT_EQ(r.chunks_removed, 0u);
  for (const auto& h : dead)
    EXPECT_TRUE(Has(h));
  // A crashed writer's marker ages out; then the GC proceeds.
  Age(kHour);
  r = Gc();
  EXPECT_TRUE(r.stopped_by_writer.empty());
  EXPECT_EQ(r.chunks_removed, dead.size());
  // A refreshed marker is fresh again.
  ASSERT_TRUE(RefreshMarker(&env_, dir_.path(), *marker).has_value());
  EXPECT_FALSE(Gc().stopped_by_writer.empty());
  ASSERT_TRUE(RemoveMarker(&env_, dir_.path(), *marker).has_value());
  EXPECT_TRUE(Gc().stopped_by_writer.empty());
}

TEST_F(ChunkGcTest, WriterRefusedWhileAGcMarkerIsFresh) {
  auto gc = CreateGcMarker(&env_, dir_.path());
  ASSERT_TRUE(gc.has_value());
  auto w = CreateWriterMarker(&env_, dir_.path(), "ranker", "v3");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kUnavailable);
  EXPECT_TRUE(ListMarkers(&env_, dir_.path(), kWritersDir)->empty());  // its own marker removed
  Age(kGcMarkerMaxAgeNs + 1);  // a crashed GC's marker ages out
  EXPECT_TRUE(CreateWriterMarker(&env_, dir_.path(), "ranker", "v3").has_value());
}

TEST_F(ChunkGcTest, StopsOnACorruptRecipe) {
  auto live = WriteVersion("ranker", "v1", 1);
  auto dead = WriteVersion("ranker", "v2", 2);
  RemoveRecipe("ranker", "v2");
  std::string text = ReadFileToString(&env_, dir_ / RecipeRel("ranker", "v1")).value();
  text[30] ^= 1;
  std::filesystem::remove(dir_ / RecipeRel("ranker", "v1"));
  ASSERT_TRUE(WriteFileAtomic(&env_, dir_ / RecipeRel("ranker", "v1"), text).has_value());
  Age(2 * kHour);
  auto r = CollectGarbage(&env_, dir_.path(), GcOptions{kHour, false});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find("ranker/versions/v1.recipe"), std::string::npos)
      << r.error().message();
  for (const auto& h : live)
    EXPECT_TRUE(Has(h));
  for (const auto& h : dead)
    EXPECT_TRUE(Has(h));
  EXPECT_TRUE(ListMarkers(&env_, dir_.path(), kGcDir)->empty());
}

TEST_F(ChunkGcTest, RecipesOfEveryModelCountAndOldTempsGo) {
  auto a = WriteVersion("ranker", "v1", 1);
  auto b = WriteVersion("embedder", "v1", 3);
  ASSERT_TRUE(WriteFileAtomic(&env_, dir_ / "notamodel", "x").has_value());
  ASSERT_TRUE(env_.CreateDirs(dir_ / "empty-model").has_value());
  std::string tmp = ChunkRel(a[0]);
  tmp = DirName(tmp) + "/.tmp-" + ToHex(a[0]) + "-1-2";
  ASSERT_TRUE(WriteFileAtomic(&env_, dir_ / tmp, "partial").has_value());
  Age(2 * kHour);
  GcResult r = Gc();
  EXPECT_EQ(r.recipes, 2u);
  EXPECT_EQ(r.chunks_removed, 0u);
  EXPECT_EQ(r.temps_removed, 1u);
  EXPECT_FALSE(std::filesystem::exists(dir_ / tmp));
  for (const auto& h : a)
    EXPECT_TRUE(Has(h));
  for (const auto& h : b)
    EXPECT_TRUE(Has(h));
}

}  // namespace
}  // namespace modelswap::chunk
