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
  bool HasDelta(const ChunkHash& h, const ChunkHash& b) { return store_.HasDelta(h, b).value(); }
  // Stores `content` as a delta against `base` (base stored whole too) and returns its entry.
  RecipeChunk DeltaEntry(const std::vector<std::byte>& content, const std::vector<std::byte>& base,
                         uint64_t offset) {
    EXPECT_TRUE(store_.Put(Sha256(base), base, 1).has_value());
    auto put = store_.PutDelta(Sha256(content), content, Sha256(base), base, 1, 1 << 20);
    EXPECT_TRUE(put.has_value() && put->has_value());
    return RecipeChunk{
        .offset = offset,
        .length = static_cast<uint32_t>(content.size()),
        .stored_length = put.has_value() && put->has_value() ? (*put)->stored_length : 1,
        .hash = Sha256(content),
        .delta = true,
        .base_hash = Sha256(base),
        .base_length = static_cast<uint32_t>(base.size())};
  }
  void WriteRecipe(const std::string& model, const std::string& version,
                   std::vector<RecipeChunk> chunks) {
    Recipe r;
    r.model = model;
    r.version = version;
    r.msf_checksum = 1;
    r.chunks = std::move(chunks);
    for (const RecipeChunk& c : r.chunks)
      r.file_bytes += c.length;
    EXPECT_TRUE(env_.CreateDirs(dir_ / (model + "/versions")).has_value());
    EXPECT_TRUE(
        WriteFileAtomic(&env_, dir_ / RecipeRel(model, version), EncodeRecipe(r)).has_value());
  }

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

// A delta entry keeps its delta file <H>.<B> and its base <B>; nothing else of H.
TEST_F(ChunkGcTest, DeltaEntriesKeepDeltaAndBase) {
  auto base = RandomBytes(64 << 10, 7), content = base, unused = base, whole = RandomBytes(5000, 8);
  content[100] ^= std::byte{1};
  unused[200] ^= std::byte{1};
  const ChunkHash b = Sha256(base), h = Sha256(content), u = Sha256(unused), w = Sha256(whole);
  RecipeChunk d = DeltaEntry(content, base, 0);
  auto put = store_.Put(w, whole, 1);
  ASSERT_TRUE(put.has_value());
  WriteRecipe("ranker", "v2",
              {d, RecipeChunk{.offset = d.length,
                              .length = static_cast<uint32_t>(whole.size()),
                              .stored_length = put->stored_length,
                              .hash = w,
                              .hole = false,
                              .delta = false,
                              .base_hash = {},
                              .base_length = 0}});
  ASSERT_TRUE(DeltaEntry(unused, base, 0).delta);      // a delta no recipe names
  ASSERT_TRUE(store_.Put(h, content, 1).has_value());  // H whole: no recipe names it whole
  Age(2 * kHour);
  auto young = RandomBytes(64 << 10, 9);
  young[5] ^= std::byte{1};
  ASSERT_TRUE(DeltaEntry(young, base, 0).delta);  // unreferenced but young: kept

  GcResult dry = Gc(/*dry_run=*/true);
  EXPECT_EQ(dry.chunks_seen, 6u);
  EXPECT_EQ(dry.deltas_seen, 3u);
  EXPECT_EQ(dry.chunks_referenced, 3u);  // <H>.<B>, <B>, <W>
  EXPECT_EQ(dry.chunks_young, 1u);
  EXPECT_EQ(dry.chunks_removed, 2u);  // <U>.<B> and <H>
  EXPECT_EQ(dry.deltas_removed, 1u);
  EXPECT_TRUE(HasDelta(u, b));
  EXPECT_TRUE(Has(h));

  GcResult r = Gc();
  EXPECT_EQ(r.chunks_removed, 2u);
  EXPECT_EQ(r.deltas_removed, 1u);
  EXPECT_TRUE(HasDelta(h, b));
  EXPECT_TRUE(Has(b));
  EXPECT_TRUE(Has(w));
  EXPECT_FALSE(HasDelta(u, b));
  EXPECT_FALSE(Has(h));
  EXPECT_TRUE(HasDelta(Sha256(young), b));
  // The recipe still reads back whole through the store.
  std::vector<std::byte> out(content.size());
  ASSERT_TRUE(store_.GetEntry(d, out).has_value());
  EXPECT_EQ(out, content);

  // Once no recipe names them, the delta file and its base go too.
  RemoveRecipe("ranker", "v2");
  Age(2 * kHour);
  r = Gc();
  EXPECT_EQ(r.chunks_removed, 4u);  // <H>.<B>, <B>, <W>, the once young delta
  EXPECT_EQ(r.deltas_removed, 2u);
  EXPECT_FALSE(HasDelta(h, b));
  EXPECT_FALSE(Has(b));
  EXPECT_TRUE(store_.List()->empty());
}

// A base stays while any recipe's delta entry names it, even when no recipe names it whole.
TEST_F(ChunkGcTest, BaseKeptByAnyDeltaEntry) {
  auto base = RandomBytes(64 << 10, 10), c1 = base, c2 = base;
  c1[1] ^= std::byte{1};
  c2[2] ^= std::byte{1};
  WriteRecipe("ranker", "v2", {DeltaEntry(c1, base, 0)});
  WriteRecipe("ranker", "v3", {DeltaEntry(c2, base, 0)});
  Age(2 * kHour);
  RemoveRecipe("ranker", "v2");
  GcResult r = Gc();
  EXPECT_EQ(r.chunks_removed, 1u);
  EXPECT_FALSE(HasDelta(Sha256(c1), Sha256(base)));
  EXPECT_TRUE(HasDelta(Sha256(c2), Sha256(base)));
  EXPECT_TRUE(Has(Sha256(base)));
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
