// One test per .msf reader check: each corruption is rejected with the error naming that check.
#include <gtest/gtest.h>

#include <cstring>

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
  PutU32(file_, kOffFlags, 2);  // bit 0 is kFlagDelta
  Reseal(file_);
  ExpectRejected(file_, "unknown header flags");
}
TEST_F(MsfReaderTest, ReservedField) {
  PutU64(file_, kOffReserved, 1);
  Reseal(file_);
  ExpectRejected(file_, "reserved header bytes");
}
TEST_F(MsfReaderTest, ReservedTail) {
  file_[kOffDeltaFieldsEnd + 10] = std::byte{1};
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

// An index whose checksums were recomputed after it was edited must still be refused: full
// verification proves every entry is found through its key's probe sequence.
class MsfIndexTest : public MsfReaderTest {
 protected:
  uint64_t Capacity() { return Section(1, 16) / 8; }
  uint64_t SlotAddr(uint64_t i) { return Section(1, 8) + i * 8; }
  uint64_t SlotValue(uint64_t i) { return LoadU64(file_.data() + SlotAddr(i)); }
  uint64_t Hash(const std::string& key) {
    return HashKey(std::as_bytes(std::span(key)), LoadU64(file_.data() + kOffHashSeed));
  }
  // The slot position holding `key`, found by probing as Find does.
  uint64_t SlotOf(const std::string& key) {
    uint64_t mask = Capacity() - 1;
    for (uint64_t i = Hash(key) & mask;; i = (i + 1) & mask) {
      uint64_t slot = SlotValue(i);
      uint64_t off = slot & kOffsetMask;
      uint32_t len = LoadU32(file_.data() + Section(0, 8) + off);
      std::string k(reinterpret_cast<const char*>(file_.data() + Section(0, 8) + off + 8), len);
      if (k == key) return i;
    }
  }
  // Keys of entries_ a lookup no longer finds with their own value (what a lying index causes).
  size_t Misses(const std::vector<std::byte>& f) {
    auto r = Reader::Open(f, VerifyLevel::kHeader);
    EXPECT_TRUE(r.has_value());
    size_t misses = 0;
    for (const auto& [k, v] : entries_)
      misses += r->Find(std::string_view(k)) != std::optional<std::string_view>(v);
    return misses;
  }
};

TEST_F(MsfIndexTest, SlotFingerprintEdited) {
  uint64_t i = SlotOf("key7");
  PutU64(file_, SlotAddr(i), SlotValue(i) ^ (uint64_t{1} << 60));
  Reseal(file_);
  EXPECT_EQ(Misses(file_), 1u);
  ExpectRejected(file_, "index slot " + std::to_string(i) + " fingerprint does not match");
}

TEST_F(MsfIndexTest, HashSeedNotTheIndexOnes) {
  PutU64(file_, kOffHashSeed, LoadU64(file_.data() + kOffHashSeed) + 1);
  Reseal(file_);
  EXPECT_GT(Misses(file_), 90u);
  ExpectRejected(file_, "fingerprint does not match its entry's key");
}

TEST_F(MsfIndexTest, SlotMovedOutOfItsProbeSequence) {
  // Move key7's slot to the empty slot right after the next empty slot past its home: its
  // probe sequence stops at that first empty slot and never reaches it.
  uint64_t mask = Capacity() - 1, from = SlotOf("key7");
  uint64_t e = Hash("key7") & mask;
  while (SlotValue(e) != 0)
    e = (e + 1) & mask;
  uint64_t to = (e + 1) & mask;
  while (SlotValue(to) != 0)  // the next empty slot after that one
    to = (to + 1) & mask;
  ASSERT_NE(to, e);
  uint64_t moved = SlotValue(from);
  PutU64(file_, SlotAddr(to), moved);
  PutU64(file_, SlotAddr(from), 0);
  Reseal(file_);
  EXPECT_GE(Misses(file_), 1u);
  ExpectRejected(file_, "is not reachable from its key's home slot");
}

TEST_F(MsfIndexTest, SlotDuplicatedOverItsRunNeighbour) {
  // Find two adjacent used slots; the second takes a copy of the first: one entry is listed
  // twice, the other not at all, and the used-slot count does not change.
  uint64_t mask = Capacity() - 1, i = 0;
  while (SlotValue(i) == 0 || SlotValue((i + 1) & mask) == 0)
    ++i;
  PutU64(file_, SlotAddr((i + 1) & mask), SlotValue(i));
  Reseal(file_);
  EXPECT_EQ(Misses(file_), 1u);
  ExpectRejected(file_, "both point at the entry at data offset");
}

TEST_F(MsfIndexTest, DuplicateKeyShadowsAnotherEntry) {
  // Rename entry X's key in DATA to key Y (same length) and give X's slot Y's fingerprint,
  // choosing X and Y so that X's slot is in Y's probe sequence: Find(Y) then answers one of the
  // two and the other can never be found.
  uint64_t mask = Capacity() - 1, data = Section(0, 8);
  for (const auto& [x, xv] : entries_) {
    uint64_t q = SlotOf(x);
    for (const auto& [y, yv] : entries_) {
      if (y == x || y.size() != x.size()) continue;
      uint64_t home = Hash(y) & mask;
      bool run_ok = true;
      for (uint64_t p = home; p != q && run_ok; p = (p + 1) & mask)
        run_ok = SlotValue(p) != 0;
      if (!run_ok) continue;
      uint64_t off = SlotValue(q) & kOffsetMask;
      std::memcpy(file_.data() + data + off + 8, y.data(), y.size());
      uint64_t fp = Fingerprint(Hash(y));
      PutU64(file_, SlotAddr(q), (fp << kFingerprintShift) | off);
      Reseal(file_);
      EXPECT_GE(Misses(file_), 1u);
      ExpectRejected(file_, "duplicate key in the data section");
      return;
    }
  }
  GTEST_SKIP() << "no pair of keys shares a probe run in this file";
}

TEST_F(MsfIndexTest, SlotPointsAtAFakeEntryInsideAValue) {
  // key0's value holds the bytes of an entry for a key that is not in the file; one slot is
  // aimed at it with the right fingerprint, in a position its probe sequence reaches, in place
  // of a real entry's slot. Every per-slot check passes; only the set of offsets is wrong.
  entries_.clear();
  for (int i = 0; i < 100; ++i)
    entries_.emplace_back("key" + std::to_string(i), "value" + std::to_string(i));
  const std::string fake_value = "x";
  auto fake_entry = [&](const std::string& key) {
    std::string e(8, '\0');
    uint32_t kl = static_cast<uint32_t>(key.size()), vl = 1;
    std::memcpy(e.data(), &kl, 4);
    std::memcpy(e.data() + 4, &vl, 4);
    return e + key + fake_value;
  };
  entries_[0].second = fake_entry("fake00000");
  file_ = BuildMsfBytes(entries_);
  uint64_t mask = Capacity() - 1;
  uint64_t victim = SlotOf("key50");
  std::string fake;
  for (int n = 0; n < 100000 && fake.empty(); ++n) {
    std::string k = "fake" + std::to_string(100000 + n).substr(1);
    if ((Hash(k) & mask) == victim) fake = k;
  }
  ASSERT_FALSE(fake.empty());
  entries_[0].second = fake_entry(fake);
  file_ = BuildMsfBytes(entries_);  // same keys, same order: same slot positions
  ASSERT_EQ(SlotOf("key50"), victim);
  uint64_t key0 = SlotValue(SlotOf("key0")) & kOffsetMask;
  uint64_t fake_off = key0 + 8 + 4;  // entry header, "key0", then the value
  PutU64(file_, SlotAddr(victim), (Fingerprint(Hash(fake)) << kFingerprintShift) | fake_off);
  Reseal(file_);
  EXPECT_EQ(Misses(file_), 1u);
  ExpectRejected(file_, "do not point at the starts of the data section's entries");
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
