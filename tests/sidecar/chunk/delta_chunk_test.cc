// Delta chunks in the chunk store (DeltaChunkRel): a realistic small change stores in a few
// bytes, PutDelta refuses a frame over max_stored without leaving anything, and every damaged,
// planted or mismatched delta file is refused with kCorruption naming the chunk and its base.
#include <gtest/gtest.h>
#include <zstd.h>

#include <filesystem>
#include <iostream>

#include "sidecar/chunk/chunk_store.h"
#include "tests/sidecar/chunk/chunk_test_util.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::chunk {
namespace {

using testing::RandomBytes;

class DeltaChunkTest : public ::testing::Test {
 protected:
  // A 64 KiB random base (incompressible on its own, like the index chunks of a model file) and
  // the same bytes with one 8-byte slot changed, as an inserted key changes an index chunk.
  void SetUp() override {
    base_ = RandomBytes(64 << 10, 1);
    content_ = base_;
    uint64_t slot = 0x0123'4567'89ab'cdefull;
    std::memcpy(content_.data() + 40'000, &slot, 8);
    base_hash_ = Sha256(base_);
    hash_ = Sha256(content_);
  }
  std::string DeltaPath() { return dir_ / DeltaChunkRel(hash_, base_hash_); }
  void Overwrite(std::string_view bytes) {
    std::filesystem::remove(DeltaPath());
    ASSERT_TRUE(WriteFileAtomic(DefaultEnv(), DeltaPath(), bytes).has_value());
  }
  std::string FileText() { return ReadFileToString(DefaultEnv(), DeltaPath(), 64 << 20).value(); }
  PutResult PutOne(uint64_t max_stored = 1 << 20) {
    auto put = store_.PutDelta(hash_, content_, base_hash_, base_, 1, max_stored);
    EXPECT_TRUE(put.has_value()) << put.error().ToString();
    EXPECT_TRUE(put->has_value());
    return put->value();
  }
  void ExpectCorrupt(std::span<const std::byte> base, size_t length, const std::string& words) {
    std::vector<std::byte> out(length);
    auto st = store_.GetDelta(hash_, base_hash_, base, out);
    ASSERT_FALSE(st.has_value()) << "accepted; expected: " << words;
    EXPECT_EQ(st.error().code(), Code::kCorruption) << st.error().ToString();
    EXPECT_NE(st.error().message().find(ToHex(hash_)), std::string::npos) << st.error().message();
    EXPECT_NE(st.error().message().find(ToHex(base_hash_)), std::string::npos)
        << st.error().message();
    EXPECT_NE(st.error().message().find(words), std::string::npos) << st.error().message();
  }
  std::vector<std::string> FilesInFanOut() {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / DirName(ChunkRel(hash_))))
      names.push_back(e.path().filename().string());
    return names;
  }

  modelswap::testing::TempDir dir_;
  ChunkStore store_{DefaultEnv(), dir_.path()};
  std::vector<std::byte> base_, content_;
  ChunkHash base_hash_, hash_;
};

TEST_F(DeltaChunkTest, SmallChangeStoresInFewBytesAndReadsBack) {
  EXPECT_EQ(DeltaChunkRel(hash_, base_hash_),
            ".chunks/" + ToHex(hash_).substr(0, 2) + "/" + ToHex(hash_) + "." + ToHex(base_hash_));
  EXPECT_FALSE(store_.HasDelta(hash_, base_hash_).value());
  for (int level : {1, 3, 19}) {
    modelswap::testing::TempDir dir;
    ChunkStore store(DefaultEnv(), dir.path());
    auto put = store.PutDelta(hash_, content_, base_hash_, base_, level, content_.size() / 2);
    ASSERT_TRUE(put.has_value()) << put.error().ToString();
    ASSERT_TRUE(put->has_value());
    std::cout << "64 KiB random chunk, 8 bytes changed, zstd " << level << ": delta "
              << (*put)->stored_length << " bytes\n";
    EXPECT_LT((*put)->stored_length, 200u);
    std::vector<std::byte> out(content_.size());
    auto st = store.GetDelta(hash_, base_hash_, base_, out);
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
    EXPECT_EQ(out, content_);
  }
  PutResult put = PutOne();
  EXPECT_TRUE(put.stored);
  EXPECT_EQ(std::filesystem::file_size(DeltaPath()), put.stored_length);
  EXPECT_TRUE(store_.HasDelta(hash_, base_hash_).value());
  EXPECT_FALSE(store_.Has(hash_).value());  // only the delta name exists
  for (const std::string& name : FilesInFanOut())
    EXPECT_FALSE(name.starts_with(".tmp-")) << name;
  // Idempotent: an existing delta file is kept, not rewritten.
  auto again = store_.PutDelta(hash_, content_, base_hash_, base_, 19, 1 << 20);
  ASSERT_TRUE(again.has_value() && again->has_value());
  EXPECT_FALSE((*again)->stored);
  EXPECT_EQ((*again)->stored_length, put.stored_length);
}

TEST_F(DeltaChunkTest, WholeChunksUnaffectedByDeltaUseOnTheSameThread) {
  // The thread's zstd contexts carry a prefix and a window setting for a delta; a whole chunk
  // put and got right after must not see them (nor after a failed GetDelta).
  PutOne();
  std::vector<std::byte> out(content_.size());
  EXPECT_FALSE(store_.GetDelta(hash_, base_hash_, RandomBytes(base_.size(), 9), out).has_value());
  auto other = RandomBytes(70'000, 2);
  ASSERT_TRUE(store_.Put(Sha256(other), other, 1).has_value());
  std::vector<std::byte> back(other.size());
  ASSERT_TRUE(store_.Get(Sha256(other), back).has_value());
  EXPECT_EQ(back, other);
  // A whole frame never references a prefix: plain zstd decompresses it.
  std::string text =
      ReadFileToString(DefaultEnv(), dir_ / ChunkRel(Sha256(other)), 1 << 20).value();
  std::vector<std::byte> plain(other.size());
  EXPECT_EQ(ZSTD_decompress(plain.data(), plain.size(), text.data(), text.size()), other.size());
  EXPECT_EQ(plain, other);
}

TEST_F(DeltaChunkTest, OverMaxStoredWritesNothing) {
  // Unrelated content: the delta is as large as the content, over half of it.
  auto unrelated = RandomBytes(base_.size(), 3);
  auto put =
      store_.PutDelta(Sha256(unrelated), unrelated, base_hash_, base_, 3, unrelated.size() / 2);
  ASSERT_TRUE(put.has_value()) << put.error().ToString();
  EXPECT_FALSE(put->has_value());
  EXPECT_FALSE(store_.HasDelta(Sha256(unrelated), base_hash_).value());
  EXPECT_FALSE(
      std::filesystem::exists(dir_ / ".chunks/" + ToHex(Sha256(unrelated)).substr(0, 2)) &&
      !std::filesystem::is_empty(dir_ / ".chunks/" + ToHex(Sha256(unrelated)).substr(0, 2)));
  // One byte under what it needs: nullopt; exactly what it needs: stored.
  modelswap::testing::TempDir probe;
  ChunkStore measure(DefaultEnv(), probe.path());
  auto need = measure.PutDelta(hash_, content_, base_hash_, base_, 1, 1 << 20);
  ASSERT_TRUE(need.has_value() && need->has_value());
  const uint32_t n = (*need)->stored_length;
  auto under = store_.PutDelta(hash_, content_, base_hash_, base_, 1, n - 1);
  ASSERT_TRUE(under.has_value());
  EXPECT_FALSE(under->has_value());
  EXPECT_FALSE(std::filesystem::exists(dir_ / DirName(ChunkRel(hash_))) &&
               !FilesInFanOut().empty());
  auto exact = store_.PutDelta(hash_, content_, base_hash_, base_, 1, n);
  ASSERT_TRUE(exact.has_value() && exact->has_value());
  EXPECT_EQ((*exact)->stored_length, n);
}

TEST_F(DeltaChunkTest, PutDeltaRefusesWrongHashesAndArguments) {
  auto other = RandomBytes(1000, 4);
  auto code = [&](const ChunkHash& h, std::span<const std::byte> c, const ChunkHash& b,
                  std::span<const std::byte> bc, int level) {
    auto r = store_.PutDelta(h, c, b, bc, level, 1 << 20);
    return r.has_value() ? Code::kOk : r.error().code();
  };
  EXPECT_EQ(code(Sha256(other), content_, base_hash_, base_, 1), Code::kInvalidArgument);
  EXPECT_EQ(code(hash_, content_, Sha256(other), base_, 1), Code::kInvalidArgument);
  EXPECT_EQ(code(base_hash_, base_, base_hash_, base_, 1), Code::kInvalidArgument);
  EXPECT_EQ(code(hash_, content_, base_hash_, base_, 0), Code::kInvalidArgument);
  EXPECT_EQ(code(hash_, content_, base_hash_, {}, 1), Code::kInvalidArgument);
  EXPECT_EQ(code(Sha256({}), {}, base_hash_, base_, 1), Code::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_ / ".chunks"));
}

TEST_F(DeltaChunkTest, WrongBaseBytesRefusedNamingChunkAndBase) {
  PutOne();
  // Bytes that are not the base's: zstd fails or the content's SHA-256 does not match.
  ExpectCorrupt(RandomBytes(base_.size(), 5), content_.size(), "");
  auto nearly = base_;
  nearly[40'001] ^= std::byte{1};  // inside the changed slot's neighbourhood
  nearly[100] ^= std::byte{1};
  ExpectCorrupt(nearly, content_.size(), "");
  // And a missing delta file is kNotFound, as for Get.
  ASSERT_TRUE(store_.RemoveDelta(hash_, base_hash_).has_value());
  std::vector<std::byte> out(content_.size());
  auto st = store_.GetDelta(hash_, base_hash_, base_, out);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kNotFound);
}

TEST_F(DeltaChunkTest, DamagedDeltaFileRefused) {
  PutOne();
  const std::string good = FileText();
  for (size_t n : {size_t{1}, size_t{4}, size_t{17}, good.size() / 2, good.size() - 1}) {
    Overwrite(good.substr(0, n));
    ExpectCorrupt(base_, content_.size(), "");
  }
  Overwrite("");
  ExpectCorrupt(base_, content_.size(), "0 bytes");
  Overwrite(good + "trailing");
  ExpectCorrupt(base_, content_.size(), "not exactly one zstd frame");
  Overwrite(std::string(good.size(), 'x'));
  ExpectCorrupt(base_, content_.size(), "not a zstd frame");
  for (size_t i = 0; i < good.size(); i += 7) {
    std::string bad = good;
    bad[i] ^= 0x10;
    Overwrite(bad);
    ExpectCorrupt(base_, content_.size(), "");
  }
  // The whole chunk's frame (no prefix) under the delta's name: still exactly H's bytes, so
  // it is accepted: the name promises H's bytes given B's, and the SHA-256 proves them.
  std::string whole(ZSTD_compressBound(content_.size()), '\0');
  whole.resize(ZSTD_compress(whole.data(), whole.size(), content_.data(), content_.size(), 1));
  Overwrite(whole);
  std::vector<std::byte> out(content_.size());
  EXPECT_TRUE(store_.GetDelta(hash_, base_hash_, base_, out).has_value());
}

TEST_F(DeltaChunkTest, FrameDeclaringAnotherSizeRefusedBeforeDecompressing) {
  PutOne();
  ExpectCorrupt(base_, content_.size() - 1, "frame holds");
  // A hostile header claiming 4 GiB (RFC 8878, 3.1.1; as in chunk_store_test).
  std::string frame("\x28\xb5\x2f\xfd\xe0", 5);
  uint64_t declared = 4ull << 30;
  frame.append(reinterpret_cast<const char*>(&declared), 8);
  frame.append("\x01\x00\x00", 3);
  Overwrite(frame);
  ExpectCorrupt(base_, content_.size(), "frame holds 4294967296 bytes");
  std::filesystem::resize_file(DeltaPath(), 1ull << 30);
  ExpectCorrupt(base_, content_.size(), "impossible for a chunk");
}

TEST_F(DeltaChunkTest, GetEntryWholeAndDelta) {
  ASSERT_TRUE(store_.Put(base_hash_, base_, 1).has_value());
  PutResult put = PutOne();
  RecipeChunk whole{.offset = 0,
                    .length = static_cast<uint32_t>(base_.size()),
                    .stored_length = 1,
                    .hash = base_hash_,
                    .hole = false,
                    .delta = false,
                    .base_hash = {},
                    .base_length = 0};
  RecipeChunk delta{.offset = 0,
                    .length = static_cast<uint32_t>(content_.size()),
                    .stored_length = put.stored_length,
                    .hash = hash_,
                    .delta = true,
                    .base_hash = base_hash_,
                    .base_length = static_cast<uint32_t>(base_.size())};
  std::vector<std::byte> out(base_.size());
  ASSERT_TRUE(store_.GetEntry(whole, out).has_value());
  EXPECT_EQ(out, base_);
  auto st = store_.GetEntry(delta, out);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(out, content_);
  // The wrong size, or a hole: refused.
  std::vector<std::byte> small(10);
  EXPECT_EQ(store_.GetEntry(delta, small).error().code(), Code::kInvalidArgument);
  RecipeChunk hole;
  hole.length = 10;
  hole.hole = true;
  EXPECT_EQ(store_.GetEntry(hole, small).error().code(), Code::kInvalidArgument);
  // The base missing: kNotFound naming the base.
  ASSERT_TRUE(store_.Remove(base_hash_).has_value());
  st = store_.GetEntry(delta, out);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kNotFound);
  EXPECT_NE(st.error().ToString().find(ToHex(base_hash_)), std::string::npos)
      << st.error().ToString();
}

TEST_F(DeltaChunkTest, ListReportsBothKindsAndRemoveDelta) {
  ASSERT_TRUE(store_.Put(base_hash_, base_, 1).has_value());
  PutResult put = PutOne();
  // Lookalikes that are neither kind are skipped.
  const std::string fan = dir_ / DirName(ChunkRel(hash_));
  ASSERT_TRUE(WriteFileAtomic(DefaultEnv(), fan + "/" + ToHex(hash_) + ".zz", "x").has_value());
  ASSERT_TRUE(
      WriteFileAtomic(DefaultEnv(), fan + "/" + ToHex(hash_) + "." + std::string(64, 'G'), "x")
          .has_value());
  auto listed = store_.List();
  ASSERT_TRUE(listed.has_value()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 2u);
  int wholes = 0, deltas = 0;
  for (const ChunkInfo& c : *listed) {
    if (c.delta) {
      ++deltas;
      EXPECT_EQ(c.hash, hash_);
      EXPECT_EQ(c.base, base_hash_);
      EXPECT_EQ(c.stored_bytes, put.stored_length);
    } else {
      ++wholes;
      EXPECT_EQ(c.hash, base_hash_);
      EXPECT_EQ(c.base, ChunkHash{});
    }
    EXPECT_GT(c.mtime_ns, 0);
  }
  EXPECT_EQ(wholes, 1);
  EXPECT_EQ(deltas, 1);
  ASSERT_TRUE(store_.RemoveDelta(hash_, base_hash_).has_value());
  EXPECT_FALSE(store_.HasDelta(hash_, base_hash_).value());
  EXPECT_TRUE(store_.Has(base_hash_).value());
  auto again = store_.RemoveDelta(hash_, base_hash_);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kNotFound);
  EXPECT_EQ(store_.List()->size(), 1u);
}

TEST_F(DeltaChunkTest, DeferredSyncCoversDeltaFiles) {
  ChunkStore store(DefaultEnv(), dir_.path(), ChunkStore::Options{.defer_sync = true});
  auto put = store.PutDelta(hash_, content_, base_hash_, base_, 1, 1 << 20);
  ASSERT_TRUE(put.has_value() && put->has_value());
  ASSERT_TRUE(store.Sync().has_value());
  std::vector<std::byte> out(content_.size());
  ASSERT_TRUE(store.GetDelta(hash_, base_hash_, base_, out).has_value());
  EXPECT_EQ(out, content_);
}

}  // namespace
}  // namespace modelswap::chunk
