// Chunked writes: the recipe and chunks reassemble the very file the writer built; a second
// version uploads only what changed; nothing of a failed write is left on the volume or in
// scratch; retries reuse a complete chunked version; a held chunk store makes the writer wait.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/chunk/writer_marker.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/chunked_upload.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/writer/writer_volume_fixture.h"
#include "tests/testing/fault_env.h"
#include "tests/testing/msf_files.h"
#include "tests/testing/write_request.h"

namespace modelswap {
namespace {

using modelswap::testing::MakeWriteRequest;

namespace fs = std::filesystem;

class ChunkedWriteTest : public WriterVolumeFixture {
 protected:
  WriteRequest Request(const std::string& version, WriteSource source) {
    WriteRequest req = MakeWriteRequest(root_, "ranker", version, std::move(source));
    req.layout = WriteRequest::Layout::kChunked;
    req.scratch_dir = scratch_;
    // Small chunks so a few-MiB file has enough of them to show what was reused.
    req.chunking = chunk::ChunkerParams{2 << 10, 8 << 10, 32 << 10};
    return req;
  }
  std::string WriteTsv(const std::string& name, const std::map<std::string, std::string>& rows) {
    std::string text;
    for (const auto& [k, v] : rows)
      text += k + "\t" + v + "\n";
    std::string path = dir_ / name;
    testing::WriteAll(path, std::as_bytes(std::span(text)));
    return path;
  }
};

std::map<std::string, std::string> Rows(int n, int changed_from = -1, int changed_to = -1) {
  std::map<std::string, std::string> rows;
  for (int i = 0; i < n; ++i) {
    // Values like real rows: no long runs of one byte, which would leave FastCDC few natural cut
    // points (forced cuts at max_bytes do not re-synchronise after a shift).
    std::string value;
    uint64_t x = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + 1;
    while (value.size() < 200) {
      x ^= x >> 31;
      x *= 0xBF58476D1CE4E5B9ull;
      x ^= x >> 29;
      value += std::to_string(x % 1000000007);
    }
    if (i >= changed_from && i < changed_to) value += "-changed";
    rows["key" + std::to_string(100000 + i)] = value;
  }
  return rows;
}

TEST_F(ChunkedWriteTest, RecipeAndChunksReassembleTheBuiltFile) {
  auto r = WriteVersion(&env_, Request("v1", GenerateSource{4 << 20, 5, 300}));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->chunked);
  EXPECT_FALSE(fs::exists(VersionPath(root_, "ranker", "v1")));  // no whole file on the volume
  auto recipe = chunk::ReadRecipeBeneath(&env_, root_, chunk::RecipeRel("ranker", "v1"));
  ASSERT_TRUE(recipe.has_value()) << recipe.error().ToString();
  EXPECT_EQ(recipe->file_bytes, r->bytes);
  EXPECT_EQ(FormatChecksum(recipe->msf_checksum), r->checksum);
  EXPECT_EQ(r->chunks.chunks_total, recipe->chunks.size());
  EXPECT_EQ(r->chunks.bytes_new + r->chunks.bytes_reused + r->chunks.bytes_holes, r->bytes);
  EXPECT_GT(r->chunks.stored_bytes_new, 0u);
  std::vector<std::byte> file = Assemble(root_, *recipe);
  auto reader = msf::Reader::Open(file, msf::VerifyLevel::kFull);
  ASSERT_TRUE(reader.has_value()) << reader.error().ToString();
  EXPECT_EQ(reader->checksum(), r->checksum);
  EXPECT_EQ(reader->size(), r->entry_count);
  EXPECT_EQ(ScratchFiles(), 0u);
  auto markers = chunk::ListMarkers(&env_, root_, chunk::kWritersDir);
  ASSERT_TRUE(markers.has_value());
  EXPECT_TRUE(markers->empty());
}

TEST_F(ChunkedWriteTest, ASecondVersionUploadsOnlyWhatChanged) {
  auto v1 = WriteVersion(&env_, Request("v1", TsvSource{WriteTsv("v1.tsv", Rows(20000))}));
  ASSERT_TRUE(v1.has_value()) << v1.error().ToString();
  // 2 % of the rows, one run of them, get a longer value.
  auto v2 =
      WriteVersion(&env_, Request("v2", TsvSource{WriteTsv("v2.tsv", Rows(20000, 5000, 5400))}));
  ASSERT_TRUE(v2.has_value()) << v2.error().ToString();
  EXPECT_GT(v2->chunks.bytes_reused, v2->bytes / 2) << "most of v2 is v1's chunks";
  EXPECT_LT(v2->chunks.chunks_new, v2->chunks.chunks_total / 2);
  auto recipe = chunk::ReadRecipeBeneath(&env_, root_, chunk::RecipeRel("ranker", "v2"));
  ASSERT_TRUE(recipe.has_value());
  std::vector<std::byte> file = Assemble(root_, *recipe);
  auto reader = msf::Reader::Open(file, msf::VerifyLevel::kFull);
  ASSERT_TRUE(reader.has_value()) << reader.error().ToString();
  EXPECT_TRUE(reader->Find(std::string_view("key105001"))->ends_with("-changed"));
  EXPECT_FALSE(reader->Find(std::string_view("key100001"))->ends_with("-changed"));
  // Republishing the same content costs nothing new.
  auto v3 =
      WriteVersion(&env_, Request("v3", TsvSource{WriteTsv("v3.tsv", Rows(20000, 5000, 5400))}));
  ASSERT_TRUE(v3.has_value()) << v3.error().ToString();
  // The 4 KiB header names the version and its creation time (and checksums at its end), so the
  // chunks holding it differ; nothing else may. (A rollback publishes the old version again:
  // no write at all.)
  EXPECT_LE(v3->chunks.chunks_new, 2u);
  EXPECT_LE(v3->chunks.bytes_new, 4096u + 2 * (32u << 10));
}

TEST_F(ChunkedWriteTest, NeverOverwritesAndRetriesReuseACompleteVersion) {
  auto req = Request("v1", GenerateSource{1 << 20, 1, 100});
  ASSERT_TRUE(WriteVersion(&env_, req).has_value());
  auto again = WriteVersion(&env_, req);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
  req.reuse_existing = true;
  auto reused = WriteVersion(&env_, req);
  ASSERT_TRUE(reused.has_value()) << reused.error().ToString();
  EXPECT_TRUE(reused->reused);
  EXPECT_TRUE(reused->chunked);
  // A whole-file write of the same version is refused as well: one name, one layout.
  auto whole = Request("v1", GenerateSource{1 << 20, 1, 100});
  whole.layout = WriteRequest::Layout::kWholeFile;
  auto refused = WriteVersion(&env_, whole);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kAlreadyExists);
}

TEST_F(ChunkedWriteTest, AMissingChunkFailsTheCheckNamingIt) {
  ASSERT_TRUE(WriteVersion(&env_, Request("v1", GenerateSource{1 << 20, 1, 100})).has_value());
  auto recipe = chunk::ReadRecipeBeneath(&env_, root_, chunk::RecipeRel("ranker", "v1"));
  ASSERT_TRUE(recipe.has_value());
  const chunk::RecipeChunk* victim = nullptr;
  for (const auto& c : recipe->chunks) {
    if (!c.hole) victim = &c;
  }
  ASSERT_NE(victim, nullptr);
  ASSERT_TRUE(fs::remove(fs::path(root_) / chunk::ChunkRel(victim->hash)));
  auto checked = CheckChunkedVersion(&env_, root_, "ranker", "v1");
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error().code(), Code::kNotFound);
  EXPECT_NE(checked.error().message().find(chunk::ToHex(victim->hash)), std::string::npos);
  auto req = Request("v1", GenerateSource{1 << 20, 1, 100});
  req.reuse_existing = true;
  EXPECT_FALSE(WriteVersion(&env_, req).has_value()) << "an incomplete version is not reused";
}

TEST_F(ChunkedWriteTest, AFailedBuildLeavesNothingBehind) {
  std::string bad = dir_ / "bad.tsv";
  std::string text = "a\t1\nb\t2\na\t3\n";  // a duplicate key
  testing::WriteAll(bad, std::as_bytes(std::span(text)));
  auto r = WriteVersion(&env_, Request("v1", TsvSource{bad}));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("line"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(ScratchFiles(), 0u);
  EXPECT_FALSE(fs::exists(fs::path(root_) / chunk::RecipeRel("ranker", "v1")));
  auto markers = chunk::ListMarkers(&env_, root_, chunk::kWritersDir);
  ASSERT_TRUE(markers.has_value());
  EXPECT_TRUE(markers->empty());
}

TEST_F(ChunkedWriteTest, WaitsForAGarbageCollectionThenGivesUp) {
  auto gc = chunk::CreateGcMarker(&env_, root_);
  ASSERT_TRUE(gc.has_value()) << gc.error().ToString();
  // Built in scratch, then the upload is refused: the store is held.
  auto req = Request("v1", GenerateSource{1 << 20, 1, 100});
  req.gc_wait_ns = 0;
  auto built = WriteVersion(&env_, req);
  ASSERT_FALSE(built.has_value()) << "a fresh GC marker holds every writer";
  EXPECT_EQ(built.error().code(), Code::kUnavailable) << built.error().ToString();
  EXPECT_EQ(ScratchFiles(), 0u);
  ASSERT_TRUE(chunk::RemoveMarker(&env_, root_, *gc).has_value());
  EXPECT_TRUE(WriteVersion(&env_, req).has_value());
}

}  // namespace
}  // namespace modelswap

namespace modelswap {
namespace {

std::string TsvText(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string text;
  for (const auto& [k, v] : rows)
    text += k + "\t" + v + "\n";
  return text;
}

// The same rows in another order, 2 % of them changed in place, 1 % dropped, 1 % new: on its base
// the new version reuses nearly every chunk; without one it shares almost none.
TEST_F(ChunkedWriteTest, OnABaseUnchangedRowsKeepTheirChunks) {
  auto rows = Rows(20000);
  std::vector<std::pair<std::string, std::string>> v1(rows.begin(), rows.end());
  ASSERT_TRUE(WriteVersion(&env_, Request("v1", TsvSource{WriteTsv("v1.tsv", rows)})).has_value());
  std::vector<std::pair<std::string, std::string>> v2(v1.rbegin(), v1.rend());
  for (size_t i = 3000; i < 3400; ++i)
    v2[i].second.back() = '#';  // same length, new value
  v2.erase(v2.begin() + 9000, v2.begin() + 9200);
  for (int i = 0; i < 200; ++i)
    v2.emplace_back("new" + std::to_string(i), std::string(210, 'n'));
  std::string v2_path = dir_ / "v2.tsv";
  std::string text = TsvText(v2);
  testing::WriteAll(v2_path, std::as_bytes(std::span(text)));

  auto plain = WriteVersion(&env_, Request("v2-plain", TsvSource{v2_path}));
  ASSERT_TRUE(plain.has_value()) << plain.error().ToString();
  auto req = Request("v2", TsvSource{v2_path});
  req.base_version = "v1";
  auto based = WriteVersion(&env_, req);
  ASSERT_TRUE(based.has_value()) << based.error().ToString();
  EXPECT_EQ(based->entry_count, plain->entry_count);
  EXPECT_LT(based->chunks.bytes_new * 5, plain->chunks.bytes_new)
      << "on its base: " << based->chunks.bytes_new
      << " new bytes; plain: " << plain->chunks.bytes_new;
  EXPECT_LT(based->chunks.bytes_new, based->bytes / 5);

  auto recipe = chunk::ReadRecipeBeneath(&env_, root_, chunk::RecipeRel("ranker", "v2"));
  ASSERT_TRUE(recipe.has_value());
  std::vector<std::byte> file = Assemble(root_, *recipe);
  auto reader = msf::Reader::Open(file, msf::VerifyLevel::kFull);
  ASSERT_TRUE(reader.has_value()) << reader.error().ToString();
  EXPECT_EQ(reader->size(), v2.size());
  for (size_t i : {size_t{0}, size_t{3100}, size_t{8999}, v2.size() - 1}) {
    EXPECT_EQ(reader->Find(std::string_view(v2[i].first)), v2[i].second) << v2[i].first;
  }
  EXPECT_FALSE(reader->Find(std::string_view(v1[v1.size() - 1 - 9100].first)).has_value())
      << "a dropped row is gone";
}

TEST_F(ChunkedWriteTest, AWholeFileVersionCanBeWrittenOnAChunkedBaseAndBack) {
  auto rows = Rows(3000);
  ASSERT_TRUE(WriteVersion(&env_, Request("v1", TsvSource{WriteTsv("v1.tsv", rows)})).has_value());
  rows["key100007"] = "changed";
  auto whole = Request("v2", TsvSource{WriteTsv("v2.tsv", rows)});
  whole.layout = WriteRequest::Layout::kWholeFile;
  whole.base_version = "v1";
  auto v2 = WriteVersion(&env_, whole);
  ASSERT_TRUE(v2.has_value()) << v2.error().ToString();
  auto file = OpenModelFile(&env_, v2->path, msf::VerifyLevel::kFull);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  EXPECT_EQ(file->reader.Find(std::string_view("key100007")), "changed");
  auto v3 = Request("v3", TsvSource{WriteTsv("v3.tsv", rows)});
  v3.base_version = "v2";
  EXPECT_TRUE(WriteVersion(&env_, v3).has_value());
  auto missing = Request("v4", TsvSource{WriteTsv("v4.tsv", rows)});
  missing.base_version = "v9";
  auto refused = WriteVersion(&env_, missing);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kNotFound);
  EXPECT_NE(refused.error().message().find("base version v9"), std::string::npos)
      << refused.error().ToString();
  EXPECT_EQ(ScratchFiles(), 0u);
}

}  // namespace
}  // namespace modelswap
