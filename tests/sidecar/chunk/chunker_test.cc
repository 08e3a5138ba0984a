// The FastCDC chunker and the recipe builder: determinism, size bounds, shift resistance, holes,
// and chunks independent of how the input was fed.
#include "sidecar/chunk/chunker.h"

#include <gtest/gtest.h>

#include <set>

#include "sidecar/chunk/recipe.h"
#include "tests/sidecar/chunk/chunk_test_util.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::chunk {
namespace {

using testing::MemorySink;
using testing::RandomBytes;

std::vector<Cut> CutAll(std::span<const std::byte> data, const ChunkerParams& p = {}) {
  std::vector<Cut> cuts;
  size_t pos = 0;
  while (pos < data.size()) {
    Cut c = NextChunk(data.subspan(pos), p);
    EXPECT_GT(c.length, 0u);
    if (c.length == 0) break;
    cuts.push_back(c);
    pos += c.length;
  }
  return cuts;
}

std::vector<size_t> Lengths(const std::vector<Cut>& cuts) {
  std::vector<size_t> out;
  for (const Cut& c : cuts)
    out.push_back(c.length);
  return out;
}

TEST(ChunkerParams, Validation) {
  EXPECT_TRUE(ValidateParams({}).has_value());
  EXPECT_TRUE(ValidateParams({2048, 8192, 65536}).has_value());
  for (ChunkerParams bad : std::vector<ChunkerParams>{{16, 8192, 65536},
                                                      {2048, 10000, 65536},
                                                      {8192, 8192, 65536},
                                                      {2048, 65536, 65536},
                                                      {1 << 20, 4 << 20, 32 << 20},
                                                      {64, 128, 4096}}) {
    auto st = ValidateParams(bad);
    ASSERT_FALSE(st.has_value()) << bad.min_bytes << "/" << bad.avg_bytes << "/" << bad.max_bytes;
    EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  }
}

TEST(Chunker, DeterministicAndPinned) {
  auto data = RandomBytes(4 << 20, 1);
  auto a = Lengths(CutAll(data)), b = Lengths(CutAll(data));
  EXPECT_EQ(a, b);
  // Pinned: a change to the Gear table, the masks or the cut rule moves every cut point, so old
  // and new versions would share no chunk. Change these only on purpose.
  ASSERT_GE(a.size(), 4u);
  EXPECT_EQ((std::vector<size_t>(a.begin(), a.begin() + 4)),
            (std::vector<size_t>{74867, 48996, 120569, 69413}));
}

TEST(Chunker, EveryChunkWithinBoundsExceptTheLast) {
  for (ChunkerParams p : {ChunkerParams{}, ChunkerParams{2048, 8192, 65536}}) {
    auto data = RandomBytes(16 << 20, 2);
    auto cuts = CutAll(data, p);
    ASSERT_GT(cuts.size(), 10u);
    uint64_t total = 0;
    for (size_t i = 0; i < cuts.size(); ++i) {
      EXPECT_FALSE(cuts[i].hole);
      EXPECT_LE(cuts[i].length, p.max_bytes);
      if (i + 1 < cuts.size()) {
        EXPECT_GE(cuts[i].length, p.min_bytes) << i;
      }
      total += cuts[i].length;
    }
    EXPECT_EQ(total, data.size());
    // Normalized chunking keeps the mean near avg_bytes (loose: this is not a timing).
    double mean = static_cast<double>(total) / static_cast<double>(cuts.size());
    EXPECT_GT(mean, p.avg_bytes / 2.0);
    EXPECT_LT(mean, p.avg_bytes * 2.0);
  }
}

TEST(Chunker, FindCutHonoursShortInputs) {
  auto data = RandomBytes(1000, 3);
  EXPECT_EQ(FindCut(data, {}), 1000u);  // shorter than min_bytes: the rest is the last chunk
  auto big = RandomBytes(1 << 20, 3);
  EXPECT_LE(FindCut(big, {}), (256u << 10));
}

TEST(Chunker, AnInsertionChangesOnlyNearbyChunks) {
  auto data = RandomBytes(16 << 20, 4);
  std::vector<std::byte> edited(data);
  const std::byte insert[5] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                               std::byte{5}};
  edited.insert(edited.begin() + (8 << 20) + 12345, std::begin(insert), std::end(insert));
  MemorySink before, after;
  auto r1 = ChunkBytes(data, "m", "v1", 0, {}, before.sink());
  auto r2 = ChunkBytes(edited, "m", "v2", 0, {}, after.sink());
  ASSERT_TRUE(r1.has_value() && r2.has_value());
  size_t changed = 0;
  for (const auto& [hash, bytes] : after.chunks)
    changed += before.chunks.count(hash) == 0;
  EXPECT_LE(changed, 4u) << "of " << r2->chunks.size() << " chunks";
  EXPECT_GE(changed, 1u);
}

TEST(Chunker, ZeroRunsBecomeHoles) {
  const size_t mib = 1 << 20;
  auto data = RandomBytes(3 * mib, 5);
  std::fill(data.begin() + mib, data.begin() + 2 * mib, std::byte{0});
  data[mib - 1] = data[2 * mib] = std::byte{0xff};  // the run is exactly [1 MiB, 2 MiB)
  MemorySink sink;
  auto r = ChunkBytes(data, "m", "v", 0, {}, sink.sink());
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  uint64_t hole_bytes = 0;
  for (const RecipeChunk& c : r->chunks) {
    bool inside = c.offset >= mib && c.offset + c.length <= 2 * mib;
    bool outside = c.offset + c.length <= mib || c.offset >= 2 * mib;
    EXPECT_TRUE(inside || outside) << "chunk at " << c.offset << " straddles the zero run";
    EXPECT_EQ(c.hole, inside) << c.offset;
    if (c.hole) {
      hole_bytes += c.length;
      EXPECT_EQ(c.stored_length, 0u);
      EXPECT_EQ(c.hash, ChunkHash{});
      EXPECT_GE(c.length, ChunkerParams{}.min_bytes);
    }
  }
  EXPECT_EQ(hole_bytes, mib);
  EXPECT_EQ(sink.calls, static_cast<int>(r->chunks.size()) - 4);  // 1 MiB = four 256 KiB holes
}

TEST(Chunker, ShortZeroRunsStayData) {
  auto data = RandomBytes(1 << 20, 6);
  std::fill(data.begin() + 1000, data.begin() + 1000 + 4096, std::byte{0});
  for (const Cut& c : CutAll(data))
    EXPECT_FALSE(c.hole);
}

TEST(Chunker, LongZeroRunSplitsIntoHolesNoneShorterThanMin) {
  ChunkerParams p;
  for (size_t run : {size_t{p.max_bytes} + 100, size_t{p.max_bytes} * 3 + 5, size_t{p.min_bytes}}) {
    std::vector<std::byte> data(run, std::byte{0});
    auto cuts = CutAll(data, p);
    uint64_t total = 0;
    for (const Cut& c : cuts) {
      EXPECT_TRUE(c.hole);
      EXPECT_GE(c.length, p.min_bytes);
      EXPECT_LE(c.length, p.max_bytes);
      total += c.length;
    }
    EXPECT_EQ(total, run);
  }
}

TEST(RecipeBuilder, ChunksDoNotDependOnHowBytesArrive) {
  auto data = RandomBytes(6 << 20, 7);
  std::fill(data.begin() + (2 << 20), data.begin() + (2 << 20) + 100'000, std::byte{0});
  MemorySink whole_sink, piece_sink;
  auto whole = ChunkBytes(data, "m", "v", 42, {}, whole_sink.sink());
  ASSERT_TRUE(whole.has_value());
  auto b = RecipeBuilder::Create("m", "v", {}, piece_sink.sink());
  ASSERT_TRUE(b.has_value());
  std::mt19937 rng(7);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = std::min<size_t>(data.size() - pos, rng() % 300'000 + 1);
    ASSERT_TRUE(b->Add(std::span(data).subspan(pos, n)).has_value());
    pos += n;
  }
  auto pieces = b->Finish(42);
  ASSERT_TRUE(pieces.has_value());
  EXPECT_EQ(*pieces, *whole);
  EXPECT_EQ(pieces->msf_checksum, 42u);
  EXPECT_EQ(pieces->file_bytes, data.size());
  // Every stored chunk's content is what its hash says.
  for (const auto& [hash, bytes] : piece_sink.chunks)
    EXPECT_EQ(Sha256(bytes), hash);
}

TEST(RecipeBuilder, ChunkFileMatchesChunkBytes) {
  modelswap::testing::TempDir dir;
  auto data = RandomBytes((5 << 20) + 17, 8);
  std::string path = dir / "f.msf";
  ASSERT_TRUE(
      WriteFileAtomic(DefaultEnv(), path,
                      std::string_view(reinterpret_cast<const char*>(data.data()), data.size()))
          .has_value());
  MemorySink a, b;
  auto r1 = ChunkBytes(data, "m", "v", 1, {}, a.sink());
  auto r2 = ChunkFile(DefaultEnv(), path, "m", "v", 1, {}, b.sink());
  ASSERT_TRUE(r1.has_value() && r2.has_value());
  EXPECT_EQ(*r1, *r2);
}

TEST(RecipeBuilder, RefusesBadNamesAndParamsAndSinkErrors) {
  MemorySink s;
  EXPECT_FALSE(RecipeBuilder::Create("Bad_Model", "v", {}, s.sink()).has_value());
  EXPECT_FALSE(RecipeBuilder::Create("m", "..", {}, s.sink()).has_value());
  EXPECT_FALSE(RecipeBuilder::Create("m", "v", {8, 16, 32}, s.sink()).has_value());
  auto failing = [](const RecipeChunk&, std::span<const std::byte>) -> Result<uint32_t> {
    return Fail(Code::kIOError, "disk full (injected)");
  };
  auto data = RandomBytes(1 << 20, 9);
  auto r = ChunkBytes(data, "m", "v", 0, {}, failing);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kIOError);
}

}  // namespace
}  // namespace modelswap::chunk
