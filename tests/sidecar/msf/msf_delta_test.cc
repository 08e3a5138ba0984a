// Delta .msf files (format.h): round trip of values, tombstones and absent keys; one test per
// delta header check and per tombstone check, each rejected with a message naming it; the
// builder's refusals.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "sidecar/msf/reader.h"
#include "tests/sidecar/msf/msf_delta_files.h"

namespace modelswap::msf {
namespace {

using msf_testing::DeltaOptions;
using msf_testing::LayerOptions;
using msf_testing::MustBuild;
using msf_testing::Ops;
using testing::PutU32;
using testing::PutU64;
using testing::Reseal;

constexpr uint64_t kBaseSum = 0x1234567890abcdefu;

class MsfDeltaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 50; ++i) {
      if (i % 5 == 0) {
        ops_.push_back({"del" + std::to_string(i), std::nullopt});
      } else {
        ops_.push_back({"key" + std::to_string(i), "value" + std::to_string(i)});
      }
    }
    file_ = MustBuild(ops_, DeltaOptions("v8", "v7", kBaseSum, 3, "ranker"));
    ASSERT_TRUE(Reader::Open(file_, VerifyLevel::kFull).has_value());
  }
  void ExpectRejected(const std::vector<std::byte>& f, const std::string& what) {
    auto r = Reader::Open(f, VerifyLevel::kFull);
    ASSERT_FALSE(r.has_value()) << "accepted a file that should fail: " << what;
    EXPECT_EQ(r.error().code(), Code::kCorruption);
    EXPECT_NE(r.error().message().find(what), std::string::npos)
        << "got \"" << r.error().message() << "\", want it to name \"" << what << "\"";
    EXPECT_TRUE(r.error().message().starts_with("msf: "));
  }
  void SetBaseVersion(std::string_view name) {
    std::memset(file_.data() + kOffBaseVersion, 0, kNameField);
    std::memcpy(file_.data() + kOffBaseVersion, name.data(), name.size());
  }

  Ops ops_;
  std::vector<std::byte> file_;
};

TEST_F(MsfDeltaTest, RoundTrip) {
  auto r = Reader::Open(file_, VerifyLevel::kFull);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  const Header& h = r->header();
  EXPECT_TRUE(r->is_delta());
  EXPECT_TRUE(h.delta);
  EXPECT_EQ(h.model, "ranker");
  EXPECT_EQ(h.version, "v8");
  EXPECT_EQ(h.base_version, "v7");
  EXPECT_EQ(h.base_checksum, kBaseSum);
  EXPECT_EQ(h.chain_depth, 3u);
  EXPECT_EQ(h.tombstone_count, 10u);
  EXPECT_EQ(h.entry_count, 50u);
  EXPECT_EQ(LoadU32(file_.data() + kOffFlags), kFlagDelta);
  for (const auto& op : ops_) {
    Probe p = r->Lookup(op.key);
    if (op.value) {
      ASSERT_EQ(p.presence, Presence::kValue) << op.key;
      EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(p.value.data()), p.value.size()),
                *op.value);
      EXPECT_EQ(r->Find(op.key), std::optional<std::string_view>(*op.value));
    } else {
      EXPECT_EQ(p.presence, Presence::kTombstone) << op.key;
      EXPECT_TRUE(p.value.empty());
      EXPECT_FALSE(r->Find(op.key).has_value()) << "Find reads a tombstone as absent";
    }
  }
  EXPECT_EQ(r->Lookup("absent").presence, Presence::kAbsent);
  EXPECT_EQ(r->Lookup("").presence, Presence::kAbsent);

  // ForEachEntry sees every entry in order, tombstones flagged; ForEach only the values.
  size_t i = 0;
  ASSERT_TRUE(r->ForEachEntry([&](auto key, auto value, bool tombstone) {
                 if (i >= ops_.size()) return ADD_FAILURE() << "more entries than ops", false;
                 const auto& op = ops_[i++];
                 EXPECT_EQ(std::string(reinterpret_cast<const char*>(key.data()), key.size()),
                           op.key);
                 EXPECT_EQ(tombstone, !op.value.has_value());
                 if (tombstone) {
                   EXPECT_TRUE(value.empty());
                 }
                 return true;
               }).has_value());
  EXPECT_EQ(i, ops_.size());
  size_t values = 0;
  ASSERT_TRUE(r->ForEach([&](auto, auto) { return ++values, true; }).has_value());
  EXPECT_EQ(values, 40u);
}

TEST_F(MsfDeltaTest, EmptyValueIsNotATombstone) {
  auto f = MustBuild({{"e", ""}, {"d", std::nullopt}}, DeltaOptions("v2", "v1", 1, 1));
  auto r = Reader::Open(f, VerifyLevel::kFull);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->Lookup("e").presence, Presence::kValue);
  EXPECT_TRUE(r->Lookup("e").value.empty());
  EXPECT_EQ(r->Lookup("d").presence, Presence::kTombstone);
}

TEST_F(MsfDeltaTest, OnlyTombstonesAndEmptyDelta) {
  auto only = MustBuild({{"a", std::nullopt}, {"b", std::nullopt}}, DeltaOptions("v2", "v1", 1, 1));
  auto r = Reader::Open(only, VerifyLevel::kFull);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->header().tombstone_count, 2u);
  EXPECT_EQ(r->Lookup("a").presence, Presence::kTombstone);
  auto empty = MustBuild({}, DeltaOptions("v2", "v1", 1, 1));
  r = Reader::Open(empty, VerifyLevel::kFull);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->Lookup("a").presence, Presence::kAbsent);
}

TEST_F(MsfDeltaTest, FullFileHasNoDeltaFields) {
  auto f = MustBuild({{"a", "1"}}, LayerOptions("v1"));
  auto r = Reader::Open(f, VerifyLevel::kFull);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->is_delta());
  EXPECT_TRUE(r->header().base_version.empty());
  EXPECT_EQ(r->header().base_checksum, 0u);
  EXPECT_EQ(r->header().chain_depth, 0u);
  EXPECT_EQ(r->header().tombstone_count, 0u);
  EXPECT_EQ(LoadU32(f.data() + kOffFlags), 0u);
}

// --- header checks, one each ---

TEST_F(MsfDeltaTest, BaseVersionNotTerminated) {
  std::memset(file_.data() + kOffBaseVersion, 'a', kNameField);
  Reseal(file_);
  ExpectRejected(file_, "base version name is not NUL-terminated");
}
TEST_F(MsfDeltaTest, BaseVersionGarbageAfterNul) {
  file_[kOffBaseVersion + 30] = std::byte{'z'};
  Reseal(file_);
  ExpectRejected(file_, "base version name has bytes after its NUL");
}
TEST_F(MsfDeltaTest, BaseVersionEmpty) {
  SetBaseVersion("");
  Reseal(file_);
  ExpectRejected(file_, "delta has an empty base version");
}
TEST_F(MsfDeltaTest, BaseVersionInvalidName) {
  SetBaseVersion("../v7");
  Reseal(file_);
  ExpectRejected(file_, "base version is not a valid version name");
  SetBaseVersion("..");
  Reseal(file_);
  ExpectRejected(file_, "base version is not a valid version name");
}
TEST_F(MsfDeltaTest, BaseIsItself) {
  SetBaseVersion("v8");
  Reseal(file_);
  ExpectRejected(file_, "delta v8 names itself as its base version");
}
TEST_F(MsfDeltaTest, BaseChecksumZero) {
  PutU64(file_, kOffBaseChecksum, 0);
  Reseal(file_);
  ExpectRejected(file_, "delta has a zero base checksum");
}
TEST_F(MsfDeltaTest, ChainDepthZero) {
  PutU32(file_, kOffChainDepth, 0);
  Reseal(file_);
  ExpectRejected(file_, "delta chain depth 0 is out of range 1..7");
}
TEST_F(MsfDeltaTest, ChainDepthTooLarge) {
  PutU32(file_, kOffChainDepth, kMaxChainDeltas + 1);
  Reseal(file_);
  ExpectRejected(file_, "delta chain depth 8 is out of range 1..7");
  PutU32(file_, kOffChainDepth, kMaxChainDeltas);
  Reseal(file_);
  EXPECT_TRUE(Reader::Open(file_, VerifyLevel::kFull).has_value());
}
TEST_F(MsfDeltaTest, DeltaReservedWord) {
  PutU32(file_, kOffDeltaReserved, 1);
  Reseal(file_);
  ExpectRejected(file_, "reserved header bytes are not zero");
}
TEST_F(MsfDeltaTest, ReservedAfterDeltaFields) {
  file_[kOffDeltaFieldsEnd] = std::byte{1};
  Reseal(file_);
  ExpectRejected(file_, "reserved header bytes are not zero");
}
TEST_F(MsfDeltaTest, OtherFlagBitsStillUnknown) {
  PutU32(file_, kOffFlags, kFlagDelta | 4);
  Reseal(file_);
  ExpectRejected(file_, "unknown header flags");
}
TEST_F(MsfDeltaTest, TombstoneCountAboveEntryCount) {
  PutU64(file_, kOffTombstoneCount, 51);
  Reseal(file_);
  ExpectRejected(file_, "tombstone count 51 exceeds the entry count 50");
}
TEST_F(MsfDeltaTest, TombstoneCountMismatch) {
  PutU64(file_, kOffTombstoneCount, 9);
  Reseal(file_);
  ExpectRejected(file_, "data section holds 10 tombstones but the header's tombstone count is 9");
  PutU64(file_, kOffTombstoneCount, 11);
  Reseal(file_);
  ExpectRejected(file_, "data section holds 10 tombstones but the header's tombstone count is 11");
  // The header checks alone cannot see it.
  EXPECT_TRUE(Reader::Open(file_, VerifyLevel::kHeader).has_value());
}

// Each delta field set in a full file is rejected.
TEST_F(MsfDeltaTest, DeltaFieldsInAFullFile) {
  auto full = MustBuild({{"a", "1"}}, LayerOptions("v1"));
  for (size_t off : {kOffBaseVersion, kOffBaseChecksum, kOffChainDepth, kOffDeltaReserved,
                     kOffTombstoneCount, kOffDeltaFieldsEnd - 1}) {
    auto f = full;
    f[off] = std::byte{1};
    Reseal(f);
    ExpectRejected(f,
                   "delta fields (base version, base checksum, chain depth, tombstone count) "
                   "are not zero in a full (non-delta) file");
  }
}

// A delta with its flag and fields cleared: a full file holding tombstones.
TEST_F(MsfDeltaTest, TombstoneInAFullFile) {
  std::memset(file_.data() + kOffBaseVersion, 0, kOffDeltaFieldsEnd - kOffBaseVersion);
  PutU32(file_, kOffFlags, 0);
  Reseal(file_);
  ExpectRejected(file_, "tombstone entry at data offset 0 in a full (non-delta) file");
  // Opened unverified, the marker reads as absent and ForEach reports it.
  auto r = Reader::Open(file_, VerifyLevel::kHeader);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->Lookup("del0").presence, Presence::kAbsent);
  EXPECT_EQ(r->Lookup("key1").presence, Presence::kValue);
  auto each = r->ForEach([](auto, auto) { return true; });
  ASSERT_FALSE(each.has_value());
  EXPECT_NE(each.error().message().find("tombstone entry at data offset 0 in a full"),
            std::string::npos);
}

// A tombstone whose key runs past DATA.
TEST_F(MsfDeltaTest, TombstoneKeyPastSection) {
  auto f = MustBuild({{"k", std::nullopt}}, DeltaOptions("v2", "v1", 1, 1));
  PutU32(f, kHeaderSize, 5000);  // key_length of the only entry
  Reseal(f);
  ExpectRejected(f, "entry at data offset 0 extends past the section");
  auto r = Reader::Open(f, VerifyLevel::kHeader);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->Lookup("k").presence, Presence::kAbsent);
}

// --- builder refusals ---

TEST(MsfDeltaBuilder, TombstoneInAFullVersion) {
  std::vector<std::byte> out;
  auto s = msf_testing::BuildLayer({{"a", std::nullopt}}, LayerOptions("v1"), &out);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("tombstone (deleted key) in a full version"),
            std::string::npos);
}

TEST(MsfDeltaBuilder, UpsertedAndDeletedNamesBoth) {
  std::vector<std::byte> out;
  auto options = DeltaOptions("v2", "v1", 1, 1);
  options.describe_entry = [](uint64_t i) { return "line " + std::to_string(i + 1); };
  auto s = msf_testing::BuildLayer({{"x", "1"}, {"y", "2"}, {"x", std::nullopt}}, options, &out);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(s.error().message(), "duplicate key \"x\" at line 3 (deleted) (first at line 1)");
  s = msf_testing::BuildLayer({{"x", std::nullopt}, {"x", std::nullopt}}, options, &out);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().message(),
            "duplicate key \"x\" at line 2 (deleted) (first at line 1 (deleted))");
}

TEST(MsfDeltaBuilder, BadDeltaBase) {
  struct Case {
    DeltaBase base;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"", 1, 1}, "delta base version"},
           {{"a/b", 1, 1}, "delta base version"},
           {{"v2", 1, 1}, "delta v2 cannot be its own base"},
           {{"v1", 0, 1}, "delta base checksum is zero"},
           {{"v1", 1, 0}, "delta chain depth 0 is out of range 1..7"},
           {{"v1", 1, 8}, "delta chain depth 8 is out of range 1..7"},
       }) {
    auto options = LayerOptions("v2");
    options.delta = c.base;
    std::vector<std::byte> out;
    auto s = msf_testing::BuildLayer({{"a", "1"}}, options, &out);
    ASSERT_FALSE(s.has_value()) << c.want;
    EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
    EXPECT_NE(s.error().message().find(c.want), std::string::npos) << s.error().message();
  }
}

}  // namespace
}  // namespace modelswap::msf
