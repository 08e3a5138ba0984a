// One test per .msf reader check: each corruption is rejected with the error naming that check.
#include <gtest/gtest.h>

#include "sidecar/msf/reader.h"
#include "tests/testing/msf_files.h"

namespace modelswap::msf {
namespace {

using testing::BuildMsfBytes;
using testing::PutU32;
using testing::PutU64;
using testing::Reseal;
using testing::SectionField;

class MsfReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 100; ++i)
      entries_.emplace_back("key" + std::to_string(i), "value" + std::to_string(i));
    file_ = BuildMsfBytes(entries_);
    ASSERT_TRUE(Reader::Open(file_, VerifyLevel::kFull).has_value());
  }
  // Expects Open(kFull) to fail with kCorruption and a message containing `what`.
  void ExpectRejected(const std::vector<std::byte>& f, const std::string& what) {
    auto r = Reader::Open(f, VerifyLevel::kFull);
    ASSERT_FALSE(r.has_value()) << "accepted a file that should fail: " << what;
    EXPECT_EQ(r.error().code(), Code::kCorruption);
    EXPECT_NE(r.error().message().find(what), std::string::npos)
        << "got \"" << r.error().message() << "\", want it to name \"" << what << "\"";
    EXPECT_TRUE(r.error().message().starts_with("msf: "));
  }
  uint64_t Section(size_t i, size_t field) {
    return LoadU64(file_.data() + SectionField(i, field));
  }

  testing::Entries entries_;
  std::vector<std::byte> file_;
};

TEST_F(MsfReaderTest, ShorterThanHeader) {
  file_.resize(100);
  ExpectRejected(file_, "shorter than the header");
}
TEST_F(MsfReaderTest, EmptyFile) {
  ExpectRejected({}, "shorter than the header");
}
TEST_F(MsfReaderTest, BadMagic) {
  file_[1] = std::byte{'X'};
  ExpectRejected(file_, "bad magic");
}
TEST_F(MsfReaderTest, NewerFormatVersion) {
  PutU32(file_, kOffFormatVersion, 2);
  Reseal(file_);
  ExpectRejected(file_, "unsupported format version 2");
}
TEST_F(MsfReaderTest, HeaderSizeField) {
  PutU32(file_, kOffHeaderSize, 8192);
  Reseal(file_);
  ExpectRejected(file_, "header size");
}
TEST_F(MsfReaderTest, HeaderChecksum) {
  PutU64(file_, kOffEntryCount, 99);  // not resealed
  ExpectRejected(file_, "header checksum mismatch");
}
TEST_F(MsfReaderTest, TruncatedByOnePage) {
  file_.resize(file_.size() - kAlignment);
  ExpectRejected(file_, "truncated or appended");
}
TEST_F(MsfReaderTest, Appended) {
  file_.resize(file_.size() + 1);
  ExpectRejected(file_, "truncated or appended");
}
TEST_F(MsfReaderTest, UnknownFlags) {
  PutU32(file_, kOffFlags, 1);
  Reseal(file_);
  ExpectRejected(file_, "unknown header flags");
}
TEST_F(MsfReaderTest, ReservedField) {
  PutU64(file_, kOffReserved, 1);
  Reseal(file_);
  ExpectRejected(file_, "reserved header bytes");
}
TEST_F(MsfReaderTest, ReservedTail) {
  file_[kOffReservedTail + 10] = std::byte{1};
  Reseal(file_);
  ExpectRejected(file_, "reserved header bytes");
}
TEST_F(MsfReaderTest, ModelNameNotTerminated) {
  std::memset(file_.data() + kOffModel, 'a', kNameField);
  Reseal(file_);
  ExpectRejected(file_, "model name is not NUL-terminated");
}
TEST_F(MsfReaderTest, VersionNameGarbageAfterNul) {
  file_[kOffVersion + 40] = std::byte{'z'};
  Reseal(file_);
  ExpectRejected(file_, "version name has bytes after its NUL");
}
TEST_F(MsfReaderTest, SectionCountZero) {
  PutU32(file_, kOffSectionCount, 0);
  Reseal(file_);
  ExpectRejected(file_, "section count 0 is out of range");
}
TEST_F(MsfReaderTest, SectionCountTooLarge) {
  PutU32(file_, kOffSectionCount, kMaxSections + 1);
  Reseal(file_);
  ExpectRejected(file_, "out of range");
}
TEST_F(MsfReaderTest, UnusedSectionEntryNotZero) {
  file_[SectionField(5, 0)] = std::byte{1};
  Reseal(file_);
  ExpectRejected(file_, "unused section entry 5");
}
TEST_F(MsfReaderTest, SectionKind) {
  PutU32(file_, SectionField(0, 0), 7);
  Reseal(file_);
  ExpectRejected(file_, "section 0 has unknown kind 7");
}
TEST_F(MsfReaderTest, SectionReserved) {
  PutU32(file_, SectionField(1, 4), 1);
  Reseal(file_);
  ExpectRejected(file_, "section 1 reserved field");
}
TEST_F(MsfReaderTest, SectionAlignment) {
  PutU64(file_, SectionField(1, 8), Section(1, 8) + 8);
  Reseal(file_);
  ExpectRejected(file_, "section 1 offset is not 4 KiB aligned");
}
TEST_F(MsfReaderTest, SectionOverlapsHeader) {
  PutU64(file_, SectionField(0, 8), 0);
  Reseal(file_);
  ExpectRejected(file_, "section 0 overlaps the header");
}
TEST_F(MsfReaderTest, SectionPastEnd) {
  PutU64(file_, SectionField(1, 16), Section(1, 16) + kAlignment * 2);
  Reseal(file_);
  ExpectRejected(file_, "section 1 extends past the end");
}
TEST_F(MsfReaderTest, SectionLengthOverflow) {
  PutU64(file_, SectionField(1, 16), ~uint64_t{0});
  Reseal(file_);
  ExpectRejected(file_, "extends past the end");
}
TEST_F(MsfReaderTest, SectionsOutOfOrder) {
  // Swap the two section entries: index first, data second.
  std::vector<std::byte> a(file_.begin() + SectionField(0, 0), file_.begin() + SectionField(1, 0));
  std::copy(file_.begin() + SectionField(1, 0), file_.begin() + SectionField(2, 0),
            file_.begin() + SectionField(0, 0));
  std::copy(a.begin(), a.end(), file_.begin() + SectionField(1, 0));
  Reseal(file_);
  ExpectRejected(file_, "overlaps or precedes");
}
TEST_F(MsfReaderTest, TwoDataSections) {
  PutU32(file_, SectionField(1, 0), kSectionData);
  Reseal(file_);
  ExpectRejected(file_, "exactly one data section");
}
TEST_F(MsfReaderTest, MissingIndexSection) {
  PutU32(file_, kOffSectionCount, 1);
  std::memset(file_.data() + SectionField(1, 0), 0, kSectionEntrySize);
  Reseal(file_);
  ExpectRejected(file_, "exactly one index section");
}
TEST_F(MsfReaderTest, IndexLengthNotMultipleOf8) {
  PutU64(file_, SectionField(1, 16), Section(1, 16) - 4);
  Reseal(file_);
  ExpectRejected(file_, "index length is not a multiple of 8");
}
TEST_F(MsfReaderTest, IndexCapacityNotPowerOfTwo) {
  PutU64(file_, SectionField(1, 16), Section(1, 16) - 8);
  Reseal(file_);
  ExpectRejected(file_, "index capacity is not a power of two");
}
TEST_F(MsfReaderTest, EntryCountExceedsCapacity) {
  PutU64(file_, kOffEntryCount, Section(1, 16) / 8);
  Reseal(file_);
  ExpectRejected(file_, "entry count does not fit");
}
TEST_F(MsfReaderTest, DataChecksum) {
  file_[Section(0, 8) + 10] ^= std::byte{1};
  Reseal(file_, /*sections=*/false);
  ExpectRejected(file_, "section 0 (data) checksum mismatch");
}
TEST_F(MsfReaderTest, IndexChecksum) {
  file_[Section(1, 8) + 3] ^= std::byte{0x40};
  Reseal(file_, /*sections=*/false);
  ExpectRejected(file_, "section 1 (index) checksum mismatch");
}
TEST_F(MsfReaderTest, NonZeroPadding) {
  file_[Section(0, 8) + Section(0, 16) + 1] = std::byte{7};  // just after DATA's last byte
  Reseal(file_);
  ExpectRejected(file_, "non-zero bytes in the padding before section 1");
  file_.back() = std::byte{1};
  file_[Section(0, 8) + Section(0, 16) + 1] = std::byte{0};
  Reseal(file_);
  ExpectRejected(file_, "padding before the end");
}
TEST_F(MsfReaderTest, EntryCountTooHigh) {
  PutU64(file_, kOffEntryCount, entries_.size() + 1);
  Reseal(file_);
  ExpectRejected(file_, "entries but the header says");
}
TEST_F(MsfReaderTest, EntryCountTooLow) {
  PutU64(file_, kOffEntryCount, entries_.size() - 1);
  Reseal(file_);
  ExpectRejected(file_, "more entries than the header's entry count");
}
TEST_F(MsfReaderTest, EntryPastSectionEnd) {
  // The first entry's value length grows past the end of DATA.
  PutU32(file_, Section(0, 8) + 4, 1 << 30);
  Reseal(file_);
  ExpectRejected(file_, "extends past the section");
}
TEST_F(MsfReaderTest, DataEndsInsideEntryHeader) {
  PutU64(file_, SectionField(0, 16), Section(0, 16) + 3);  // 3 stray bytes after the last entry
  Reseal(file_);
  ExpectRejected(file_, "ends inside an entry header");
}
TEST_F(MsfReaderTest, IndexSlotPointsIntoEntry) {
  uint64_t index = Section(1, 8);
  for (uint64_t i = 0;; ++i) {
    uint64_t slot = LoadU64(file_.data() + index + i * 8);
    if (slot == 0) continue;
    PutU64(file_, index + i * 8, slot + 1);
    break;
  }
  Reseal(file_);
  ExpectRejected(file_, "does not point at an entry");
}
TEST_F(MsfReaderTest, IndexUsedSlotsMismatch) {
  uint64_t index = Section(1, 8);
  for (uint64_t i = 0;; ++i) {
    if (LoadU64(file_.data() + index + i * 8) == 0) continue;
    PutU64(file_, index + i * 8, 0);
    break;
  }
  Reseal(file_);
  ExpectRejected(file_, "used slots for");
}

// Truncation exactly at each section boundary (and one byte either side) is always rejected.
TEST_F(MsfReaderTest, TruncationAtEverySectionBoundary) {
  std::vector<uint64_t> cuts = {kHeaderSize, Section(0, 8) + Section(0, 16), Section(1, 8),
                                Section(1, 8) + Section(1, 16)};
  for (uint64_t cut : cuts) {
    for (int64_t delta : {-1, 0, 1}) {
      uint64_t n = cut + delta;
      if (n >= file_.size()) continue;
      std::vector<std::byte> f(file_.begin(), file_.begin() + n);
      auto r = Reader::Open(f, VerifyLevel::kFull);
      EXPECT_FALSE(r.has_value()) << "truncated to " << n;
    }
  }
}

// Header-only opening is O(1) and does not read sections: a data corruption passes it, and then
// lookups stay in bounds (they may miss, never crash).
TEST_F(MsfReaderTest, HeaderOnlyOpenSkipsSectionChecksums) {
  PutU32(file_, Section(0, 8) + 4, 1 << 30);  // first entry claims a 1 GiB value
  Reseal(file_, /*sections=*/false);
  auto r = Reader::Open(file_, VerifyLevel::kHeader);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->Find(std::string_view("key0")).has_value());
  EXPECT_EQ(r->Find(std::string_view("key1")), "value1");
  EXPECT_FALSE(r->ForEach([](auto, auto) { return true; }).has_value());
}

}  // namespace
}  // namespace modelswap::msf
