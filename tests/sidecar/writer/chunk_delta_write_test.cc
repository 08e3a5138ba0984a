// Delta chunks written on a chunked base (sidecar/writer/chunked_upload.h, "Delta chunks"): a
// version with a few keys inserted stores its changed chunks as deltas for far fewer bytes than
// whole; a version on a base that has deltas uses only whole chunks as bases; the chunks put
// together give the very .msf a whole-file write of the same content produces; a version without
// a base keeps recipe format 1; a retried write stores nothing new.
//
// Each version's .msf is written whole-file on its base into a reference volume (with a fake clock
// every write of the same content is the same bytes), then stored as chunks by UploadChunked,
// exactly as WriteVersion's chunked path does with the file it built in scratch; the last case
// goes through WriteVersion itself (WriteRequest::chunk_deltas, `write --no-chunk-deltas`).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_set>

#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/base_layout.h"
#include "sidecar/writer/chunked_upload.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/writer/writer_volume_fixture.h"
#include "tests/testing/msf_files.h"
#include "tests/testing/write_request.h"

namespace modelswap {
namespace {

using modelswap::testing::MakeWriteRequest;

namespace fs = std::filesystem;

constexpr char kModel[] = "ranker";
// Small chunks so a few-MiB file has enough of them.
const chunk::ChunkerParams kParams{2 << 10, 8 << 10, 32 << 10};

// n rows with values like real rows (no long runs of one byte, chunked_write_test.cc), plus
// `extra` keys the first rows lack ("key1xxxxx-n"), and values of [changed_from, changed_to)
// changed in place (same length).
std::map<std::string, std::string> Rows(int n, int extra = 0, int changed_from = -1,
                                        int changed_to = -1) {
  std::map<std::string, std::string> rows;
  auto value = [](uint64_t x) {
    std::string v;
    while (v.size() < 200) {
      x ^= x >> 31;
      x *= 0xBF58476D1CE4E5B9ull;
      x ^= x >> 29;
      v += std::to_string(x % 1000000007);
    }
    return v;
  };
  for (int i = 0; i < n; ++i) {
    std::string v = value(static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + 1);
    if (i >= changed_from && i < changed_to) v[7] = v[7] == 'x' ? 'y' : 'x';
    rows["key" + std::to_string(100000 + i)] = v;
  }
  // Spread over the key space; the base layout appends them after the base's entries anyway.
  for (int j = 0; j < extra; ++j) {
    const int at = j * (n / std::max(extra, 1));
    rows["key" + std::to_string(100000 + at) + "-n"] = value(static_cast<uint64_t>(at) + 77);
  }
  return rows;
}

class ChunkDeltaWriteTest : public WriterVolumeFixture {
 protected:
  void SetUp() override {
    WriterVolumeFixture::SetUp();
    env_.fake_clock = true;  // the same content makes the same bytes in every volume
    fs::create_directories(ref_);
    fs::create_directories(nodelta_);
  }

  std::string WriteTsv(const std::string& name, const std::map<std::string, std::string>& rows) {
    std::string text;
    for (const auto& [k, v] : rows)
      text += k + "\t" + v + "\n";
    std::string path = dir_ / name;
    testing::WriteAll(path, std::as_bytes(std::span(text)));
    return path;
  }

  // v1 (no base) chunked into both chunked volumes through WriteVersion, and whole into ref_.
  void WriteFirst(const std::map<std::string, std::string>& rows) {
    const std::string tsv = WriteTsv("v1.tsv", rows);
    for (const std::string& root : {root_, nodelta_}) {
      WriteRequest req = MakeWriteRequest(root, kModel, "v1", TsvSource{tsv});
      req.layout = WriteRequest::Layout::kChunked;
      req.scratch_dir = scratch_;
      req.chunking = kParams;
      auto w = WriteVersion(&env_, req);
      ASSERT_TRUE(w.has_value()) << w.error().ToString();
      EXPECT_EQ(w->chunks.chunks_delta, 0u);
    }
    WriteRequest req = MakeWriteRequest(ref_, kModel, "v1", TsvSource{tsv});
    ASSERT_TRUE(WriteVersion(&env_, req).has_value());
  }

  // `version` on `base` written whole into ref_; its .msf's path.
  std::string WriteReference(const std::string& version, const std::string& base,
                             const std::map<std::string, std::string>& rows) {
    WriteRequest req =
        MakeWriteRequest(ref_, kModel, version, TsvSource{WriteTsv(version + ".tsv", rows)});
    req.base_version = base;
    auto w = WriteVersion(&env_, req);
    EXPECT_TRUE(w.has_value()) << w.error().ToString();
    return VersionPath(ref_, kModel, version);
  }

  // The reference .msf of `version` stored as chunks in `root` on `base` (what WriteVersion's
  // chunked path does with the file it built).
  Result<ChunkedUploadResult> Upload(const std::string& root, const std::string& version,
                                     const std::string& base, bool deltas) {
    const std::string path = VersionPath(ref_, kModel, version);
    std::vector<std::byte> file = testing::ReadAll(path);
    auto header = msf::ParseHeader(file);
    if (!header) return Fail(header.error());
    ChunkedUploadOptions options;
    options.params = kParams;
    options.base_version = base;
    options.chunk_deltas = deltas;
    return UploadChunked(&env_, root, kModel, version, path, header->header_checksum, options);
  }

  chunk::Recipe ReadRecipe(const std::string& root, const std::string& version) {
    auto r = chunk::ReadRecipeBeneath(&env_, root, chunk::RecipeRel(kModel, version));
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(chunk::Recipe{});
  }

  uint32_t RecipeFormat(const std::string& root, const std::string& version) {
    std::vector<std::byte> bytes =
        testing::ReadAll(JoinPath(root, chunk::RecipeRel(kModel, version)));
    uint32_t format = 0;
    std::memcpy(&format, bytes.data() + 8, 4);
    return format;
  }

  // Asserts that root's recipe of version puts together exactly ref_'s .msf of it.
  void ExpectSameAsReference(const std::string& root, const std::string& version) {
    std::vector<std::byte> want = testing::ReadAll(VersionPath(ref_, kModel, version));
    chunk::Recipe recipe = ReadRecipe(root, version);
    EXPECT_TRUE(Assemble(root, recipe) == want) << version << " in " << root;
    auto header = msf::ParseHeader(want);
    ASSERT_TRUE(header.has_value());
    EXPECT_EQ(recipe.msf_checksum, header->header_checksum);
  }

  std::string ref_ = dir_ / "reference";
  std::string nodelta_ = dir_ / "volume-no-deltas";
};

constexpr int kRows = 20000;

TEST_F(ChunkDeltaWriteTest, InsertedKeysStoreDeltaChunksForFarFewerBytes) {
  ASSERT_NO_FATAL_FAILURE(WriteFirst(Rows(kRows)));
  EXPECT_EQ(RecipeFormat(root_, "v1"), chunk::kRecipeFormatVersion);
  for (const chunk::RecipeChunk& c : ReadRecipe(root_, "v1").chunks)
    EXPECT_FALSE(c.delta);
  // 0.1 % of the keys inserted.
  WriteReference("v2", "v1", Rows(kRows, kRows / 1000));
  auto deltas = Upload(root_, "v2", "v1", true);
  ASSERT_TRUE(deltas.has_value()) << deltas.error().ToString();
  auto whole = Upload(nodelta_, "v2", "v1", false);
  ASSERT_TRUE(whole.has_value()) << whole.error().ToString();

  EXPECT_EQ(whole->chunks_delta, 0u);
  EXPECT_EQ(RecipeFormat(nodelta_, "v2"), chunk::kRecipeFormatVersion);
  EXPECT_GT(deltas->chunks_delta, 0u);
  EXPECT_EQ(deltas->chunks_new, whole->chunks_new) << "the same chunks are new either way";
  EXPECT_LT(deltas->stored_bytes_new * 4, whole->stored_bytes_new)
      << deltas->stored_bytes_new << " B with deltas, " << whole->stored_bytes_new << " B without ("
      << deltas->chunks_delta << " of " << deltas->chunks_new << " deltas)";
  EXPECT_EQ(RecipeFormat(root_, "v2"), chunk::kRecipeDeltaFormatVersion);
  chunk::Recipe recipe = ReadRecipe(root_, "v2");
  uint64_t delta_entries = 0;
  chunk::ChunkStore store(&env_, root_);
  for (const chunk::RecipeChunk& c : recipe.chunks) {
    if (!c.delta) continue;
    ++delta_entries;
    EXPECT_LE(c.stored_length, c.length / 2) << "a delta saves at least half";
    EXPECT_TRUE(fs::exists(JoinPath(root_, chunk::DeltaChunkRel(c.hash, c.base_hash))));
    EXPECT_FALSE(*store.Has(c.hash)) << "stored once, as a delta";
  }
  EXPECT_EQ(delta_entries, deltas->chunks_delta);
  ExpectSameAsReference(root_, "v2");
  ExpectSameAsReference(nodelta_, "v2");
  EXPECT_EQ(ScratchFiles(), 0u);
}

TEST_F(ChunkDeltaWriteTest, AVersionOnABaseWithDeltasUsesOnlyWholeBases) {
  ASSERT_NO_FATAL_FAILURE(WriteFirst(Rows(kRows)));
  WriteReference("v2", "v1", Rows(kRows, kRows / 1000));
  ASSERT_TRUE(Upload(root_, "v2", "v1", true).has_value());
  // The base layout reads v2's delta chunks against their bases (ChunkStore::GetEntry).
  auto base = BaseVersion::Open(&env_, root_, kModel, "v2", scratch_);
  ASSERT_TRUE(base.has_value()) << base.error().ToString();
  EXPECT_TRUE(
      std::ranges::equal((*base)->bytes(), testing::ReadAll(VersionPath(ref_, kModel, "v2"))));
  base->reset();

  // v3: more keys inserted, and a run of values changed in place.
  WriteReference("v3", "v2", Rows(kRows, 2 * (kRows / 1000), 9000, 9040));
  auto v3 = Upload(root_, "v3", "v2", true);
  ASSERT_TRUE(v3.has_value()) << v3.error().ToString();
  EXPECT_GT(v3->chunks_delta, 0u);
  std::unordered_set<chunk::ChunkHash> v2_deltas;
  for (const chunk::RecipeChunk& c : ReadRecipe(root_, "v2").chunks) {
    if (c.delta) v2_deltas.insert(c.hash);
  }
  ASSERT_FALSE(v2_deltas.empty());
  chunk::ChunkStore store(&env_, root_);
  uint64_t on_a_base_of_v2_delta = 0;
  std::unordered_set<chunk::ChunkHash> v2_bases;
  for (const chunk::RecipeChunk& c : ReadRecipe(root_, "v2").chunks) {
    if (c.delta) v2_bases.insert(c.base_hash);
  }
  for (const chunk::RecipeChunk& c : ReadRecipe(root_, "v3").chunks) {
    if (!c.delta) continue;
    EXPECT_FALSE(v2_deltas.contains(c.base_hash)) << "a base is never a delta chunk";
    EXPECT_TRUE(fs::exists(JoinPath(root_, chunk::ChunkRel(c.base_hash))))
        << "base " << chunk::ToHex(c.base_hash) << " stored whole";
    if (v2_bases.contains(c.base_hash)) ++on_a_base_of_v2_delta;
  }
  EXPECT_GT(on_a_base_of_v2_delta, 0u) << "v2's delta entries lend their own bases";
  ExpectSameAsReference(root_, "v3");
}

TEST_F(ChunkDeltaWriteTest, ARetriedWriteStoresNothingNew) {
  ASSERT_NO_FATAL_FAILURE(WriteFirst(Rows(kRows)));
  WriteReference("v2", "v1", Rows(kRows, kRows / 1000));
  auto first = Upload(root_, "v2", "v1", true);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ASSERT_GT(first->chunks_delta, 0u);
  const chunk::Recipe recipe = ReadRecipe(root_, "v2");

  // A Job killed after its chunks but before its recipe: the retry finds every delta file.
  fs::remove(JoinPath(root_, chunk::RecipeRel(kModel, "v2")));
  auto retry = Upload(root_, "v2", "v1", true);
  ASSERT_TRUE(retry.has_value()) << retry.error().ToString();
  EXPECT_EQ(retry->chunks_new, 0u);
  EXPECT_EQ(retry->stored_bytes_new, 0u);
  EXPECT_EQ(ReadRecipe(root_, "v2"), recipe) << "the same recipe, deltas included";

  // A Job that ran to the end, retried: the version is reused as it is.
  WriteRequest req = MakeWriteRequest(root_, kModel, "v2", TsvSource{std::string(dir_ / "v2.tsv")});
  req.layout = WriteRequest::Layout::kChunked;
  req.scratch_dir = scratch_;
  req.chunking = kParams;
  req.base_version = "v1";
  req.reuse_existing = true;
  auto reused = WriteVersion(&env_, req);
  ASSERT_TRUE(reused.has_value()) << reused.error().ToString();
  EXPECT_TRUE(reused->reused);
  EXPECT_EQ(reused->chunks.stored_bytes_new, 0u);
  auto again = Upload(root_, "v2", "v1", true);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
}

TEST_F(ChunkDeltaWriteTest, ACheckOfTheVersionNeedsEveryDeltaAndItsBase) {
  ASSERT_NO_FATAL_FAILURE(WriteFirst(Rows(kRows)));
  WriteReference("v2", "v1", Rows(kRows, kRows / 1000));
  ASSERT_TRUE(Upload(root_, "v2", "v1", true).has_value());
  ASSERT_TRUE(CheckChunkedVersion(&env_, root_, kModel, "v2").has_value());
  const chunk::Recipe recipe = ReadRecipe(root_, "v2");
  auto delta = std::ranges::find_if(recipe.chunks, [](const auto& c) { return c.delta; });
  ASSERT_NE(delta, recipe.chunks.end());
  // The base goes (v1 removed and collected, say): the check names the delta and its base.
  const std::string base_path = JoinPath(root_, chunk::ChunkRel(delta->base_hash));
  const std::string kept = dir_ / "kept-base";
  fs::rename(base_path, kept);
  auto checked = CheckChunkedVersion(&env_, root_, kModel, "v2");
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error().code(), Code::kNotFound);
  EXPECT_NE(checked.error().message().find(chunk::ToHex(delta->base_hash)), std::string::npos)
      << checked.error().ToString();
  fs::rename(kept, base_path);
  // The delta file goes.
  fs::remove(JoinPath(root_, chunk::DeltaChunkRel(delta->hash, delta->base_hash)));
  checked = CheckChunkedVersion(&env_, root_, kModel, "v2");
  ASSERT_FALSE(checked.has_value());
  EXPECT_NE(checked.error().message().find(chunk::ToHex(delta->hash)), std::string::npos)
      << checked.error().ToString();
}

TEST_F(ChunkDeltaWriteTest, ManyAppendedKeysStillFindTheirIndexBases) {
  // 5 % of the keys appended: DATA grows by ~220 KB, so the whole INDEX starts that much later
  // than the base's (the capacity is kept: 21000 entries still fit 32768 slots). Matched at the
  // same file offsets, INDEX chunks would meet DATA chunks of the base and be stored whole.
  ASSERT_NO_FATAL_FAILURE(WriteFirst(Rows(kRows)));
  WriteReference("v2", "v1", Rows(kRows, kRows / 20));
  auto deltas = Upload(root_, "v2", "v1", true);
  ASSERT_TRUE(deltas.has_value()) << deltas.error().ToString();
  auto whole = Upload(nodelta_, "v2", "v1", false);
  ASSERT_TRUE(whole.has_value()) << whole.error().ToString();
  auto header = msf::ParseHeader(testing::ReadAll(VersionPath(ref_, kModel, "v2")));
  ASSERT_TRUE(header.has_value());
  uint64_t index_at = 0;
  for (const msf::SectionInfo& s : header->sections) {
    if (s.kind == msf::kSectionIndex) index_at = s.offset;
  }
  uint64_t index_chunks = 0, index_deltas = 0;
  for (const chunk::RecipeChunk& c : ReadRecipe(root_, "v2").chunks) {
    if (c.hole || c.offset < index_at) continue;
    ++index_chunks;
    if (c.delta) ++index_deltas;
  }
  EXPECT_GT(index_deltas * 10, index_chunks * 9)
      << index_deltas << " of " << index_chunks << " INDEX chunks stored as deltas";
  EXPECT_LT(deltas->stored_bytes_new, whole->stored_bytes_new);
  ExpectSameAsReference(root_, "v2");
}

TEST_F(ChunkDeltaWriteTest, WriteOnAChunkedBaseStoresDeltasUnlessTurnedOff) {
  ASSERT_NO_FATAL_FAILURE(WriteFirst(Rows(kRows)));
  WriteReference("v2", "v1", Rows(kRows, kRows / 1000));
  uint64_t stored[2] = {0, 0};
  for (bool deltas : {true, false}) {
    const std::string& root = deltas ? root_ : nodelta_;
    WriteRequest req =
        MakeWriteRequest(root, kModel, "v2", TsvSource{std::string(dir_ / "v2.tsv")});
    req.layout = WriteRequest::Layout::kChunked;
    req.scratch_dir = scratch_;
    req.chunking = kParams;
    req.base_version = "v1";
    req.chunk_deltas = deltas;  // `write --no-chunk-deltas` when false
    auto w = WriteVersion(&env_, req);
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    EXPECT_EQ(w->chunks.chunks_delta > 0, deltas);
    EXPECT_EQ(RecipeFormat(root, "v2"),
              deltas ? chunk::kRecipeDeltaFormatVersion : chunk::kRecipeFormatVersion);
    stored[deltas ? 0 : 1] = w->chunks.stored_bytes_new;
    ExpectSameAsReference(root, "v2");
  }
  EXPECT_LT(stored[0] * 4, stored[1]);
}

}  // namespace
}  // namespace modelswap
