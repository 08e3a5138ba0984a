// The snapshot file header: round trip, and one test per reader check (snapshot_format.h).
#include "sidecar/snapshot/snapshot_format.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/checksum.h"

namespace modelswap::snapshot {
namespace {

SnapshotHeader Sample() {
  SnapshotHeader h;
  h.name = "counters";
  h.block_bytes = 4096;
  h.region_bytes = 10 * 4096 + 100;
  h.generation = 42;
  h.created_unix_ns = 1'700'000'000'000'000'000;
  h.data_checksum = 0x1234;
  h.stored_bytes = 8192;
  return h;
}

template <class T>
void Set(HeaderBytes& b, size_t at, T v, bool reseal = true) {
  std::memcpy(b.data() + at, &v, sizeof v);
  if (reseal) {  // keep the header checksum valid so the check under test is the one that fires
    const uint64_t sum = Xxh3(std::span(b).first(kSnapshotHeaderChecksumOffset));
    std::memcpy(b.data() + kSnapshotHeaderChecksumOffset, &sum, 8);
  }
}

void ExpectError(const HeaderBytes& b, Code code, const std::string& needle) {
  Result<SnapshotHeader> h = DecodeSnapshotHeader(b);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), code) << h.error().ToString();
  EXPECT_NE(h.error().message().find(needle), std::string::npos) << h.error().message();
}

TEST(SnapshotFormatTest, RoundTrip) {
  const HeaderBytes b = EncodeSnapshotHeader(Sample());
  Result<SnapshotHeader> h = DecodeSnapshotHeader(b);
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->name, "counters");
  EXPECT_EQ(h->block_bytes, 4096u);
  EXPECT_EQ(h->region_bytes, 10u * 4096 + 100);
  EXPECT_EQ(h->generation, 42u);
  EXPECT_EQ(h->data_checksum, 0x1234u);
  EXPECT_EQ(h->stored_bytes, 8192u);
  EXPECT_EQ(std::memcmp(b.data(), "MSWPSNAP", 8), 0);
}

TEST(SnapshotFormatTest, ShortFile) {
  const HeaderBytes b = EncodeSnapshotHeader(Sample());
  Result<SnapshotHeader> h = DecodeSnapshotHeader(std::span(b).first(100));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kCorruption);
  EXPECT_NE(h.error().message().find("shorter than"), std::string::npos);
}

TEST(SnapshotFormatTest, BadMagic) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint64_t>(b, 0, 7);
  ExpectError(b, Code::kCorruption, "bad magic");
}

TEST(SnapshotFormatTest, NewerFormatVersion) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint32_t>(b, 8, 2);
  ExpectError(b, Code::kFailedPrecondition, "format version 2");
}

TEST(SnapshotFormatTest, BadHeaderBytes) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint32_t>(b, 12, 512);
  ExpectError(b, Code::kCorruption, "header_bytes 512");
}

TEST(SnapshotFormatTest, HeaderChecksumMismatch) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint64_t>(b, 32, 43, /*reseal=*/false);
  ExpectError(b, Code::kCorruption, "header checksum mismatch");
}

TEST(SnapshotFormatTest, NameLengthOutOfRange) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint32_t>(b, 20, 0);
  ExpectError(b, Code::kCorruption, "name length 0");
}

TEST(SnapshotFormatTest, NameWithPathCharacters) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  std::memcpy(b.data() + 72, "../x", 4);
  Set<uint32_t>(b, 20, 4);
  ExpectError(b, Code::kCorruption, "region name");
}

TEST(SnapshotFormatTest, BadBlockSize) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint32_t>(b, 16, 1000);
  ExpectError(b, Code::kCorruption, "block size 1000");
}

TEST(SnapshotFormatTest, ZeroRegionSize) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint64_t>(b, 24, 0);
  ExpectError(b, Code::kCorruption, "region size 0");
}

TEST(SnapshotFormatTest, GenerationZero) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint64_t>(b, 32, 0);
  ExpectError(b, Code::kCorruption, "generation 0");
}

TEST(SnapshotFormatTest, BadDataOffset) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint64_t>(b, 48, 8192);
  ExpectError(b, Code::kCorruption, "data_offset 8192");
}

TEST(SnapshotFormatTest, NameDiffersFromDirectory) {
  const HeaderBytes b = EncodeSnapshotHeader(Sample());
  Result<SnapshotHeader> h = CheckSnapshotHeader(b, "other", 42, 4096 + 10 * 4096 + 100);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("directory of \"other\""), std::string::npos);
}

TEST(SnapshotFormatTest, GenerationDiffersFromFileName) {
  const HeaderBytes b = EncodeSnapshotHeader(Sample());
  Result<SnapshotHeader> h = CheckSnapshotHeader(b, "counters", 41, 4096 + 10 * 4096 + 100);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("file name says 41"), std::string::npos);
}

TEST(SnapshotFormatTest, FileSizeDiffersFromHeader) {
  const HeaderBytes b = EncodeSnapshotHeader(Sample());
  Result<SnapshotHeader> h = CheckSnapshotHeader(b, "counters", 42, 4096 + 10 * 4096);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("truncated or extended"), std::string::npos);
  EXPECT_TRUE(CheckSnapshotHeader(b, "counters", 42, 4096 + 10 * 4096 + 100));
}

SnapshotHeader SampleDelta() {
  SnapshotHeader h = Sample();
  h.kind = SnapshotKind::kDelta;
  h.parent_generation = 40;
  h.parent_data_checksum = 0x5678;
  h.entry_count = 3;
  h.stored_bytes = 4096 + 100;  // two stored blocks: one full, the region's short last one
  return h;
}

TEST(SnapshotFormatTest, DeltaRoundTripAndFileSize) {
  const HeaderBytes b = EncodeSnapshotHeader(SampleDelta());
  Result<SnapshotHeader> h = CheckSnapshotHeader(b, "counters", 42, 4096 + 4096 + 4096 + 100);
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->kind, SnapshotKind::kDelta);
  EXPECT_EQ(h->parent_generation, 40u);
  EXPECT_EQ(h->parent_data_checksum, 0x5678u);
  EXPECT_EQ(h->entry_count, 3u);
  EXPECT_EQ(SnapshotDataBytes(*h), 4096u + 4096 + 100);
  EXPECT_EQ(DeltaIndexBytes(0), 0u);
  EXPECT_EQ(DeltaIndexBytes(512), 4096u);
  EXPECT_EQ(DeltaIndexBytes(513), 8192u);
  EXPECT_FALSE(CheckSnapshotHeader(b, "counters", 42, 4096 + 10 * 4096 + 100));
}

TEST(SnapshotFormatTest, UnknownKind) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint32_t>(b, 136, 7);
  ExpectError(b, Code::kCorruption, "unknown kind 7");
}

TEST(SnapshotFormatTest, FullWithDeltaFields) {
  HeaderBytes b = EncodeSnapshotHeader(Sample());
  Set<uint64_t>(b, 144, 3);
  ExpectError(b, Code::kCorruption, "full snapshot with delta fields set");
}

TEST(SnapshotFormatTest, DeltaParentNotOlder) {
  SnapshotHeader d = SampleDelta();
  d.parent_generation = 42;
  ExpectError(EncodeSnapshotHeader(d), Code::kCorruption, "names parent generation 42");
  d.parent_generation = 0;
  ExpectError(EncodeSnapshotHeader(d), Code::kCorruption, "names parent generation 0");
}

TEST(SnapshotFormatTest, DeltaWithMoreEntriesThanBlocks) {
  SnapshotHeader d = SampleDelta();
  d.entry_count = 12;  // the region has 11 blocks
  ExpectError(EncodeSnapshotHeader(d), Code::kCorruption, "only 11 blocks");
}

TEST(SnapshotFormatTest, DeltaStoringMoreThanItsEntriesHold) {
  SnapshotHeader d = SampleDelta();
  d.stored_bytes = 3 * 4096 + 1;
  ExpectError(EncodeSnapshotHeader(d), Code::kCorruption, "stores 12289 bytes in 3 entries");
}

TEST(SnapshotFormatTest, FileNames) {
  EXPECT_EQ(SnapshotFileName(42), "00000000000000000042.snap");
  EXPECT_EQ(ParseSnapshotFileName("00000000000000000042.snap"), 42u);
  EXPECT_EQ(ParseSnapshotFileName(".tmp-00000000000000000042.snap"), std::nullopt);
  EXPECT_EQ(ParseSnapshotFileName("00000000000000000000.snap"), std::nullopt);
  EXPECT_EQ(ParseSnapshotFileName("0000000000000000004x.snap"), std::nullopt);
  EXPECT_EQ(ParseSnapshotFileName("42.snap"), std::nullopt);
  EXPECT_EQ(ParseSnapshotFileName("99999999999999999999.snap"), std::nullopt);  // > 2^64
}

}  // namespace
}  // namespace modelswap::snapshot
