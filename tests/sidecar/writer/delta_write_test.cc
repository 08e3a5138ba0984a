// Delta versions written by the writer (`write --delta-on`, `--compact`, `--auto-compact`): the
// chain a delta joins, the depth limit, compaction against a std::map model, conflicting and
// misplaced TSV lines, chunked deltas, and bases that are missing or were replaced.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <random>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/msf/chain.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/version_chain.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/compaction.h"
#include "sidecar/writer/tsv.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/writer/writer_volume_fixture.h"
#include "tests/testing/fault_env.h"
#include "tests/testing/msf_files.h"
#include "tests/testing/write_request.h"

namespace modelswap {
namespace {

using modelswap::testing::MakeWriteRequest;

namespace fs = std::filesystem;

// The expected content of a version: key -> value; a change is a value or nullopt (delete).
using Model = std::map<std::string, std::string>;
using Changes = std::map<std::string, std::optional<std::string>>;

class DeltaWriteTest : public WriterVolumeFixture {
 protected:
  WriteRequest Full(const std::string& version, const Model& rows) {
    std::string text;
    for (const auto& [k, v] : rows)
      text += k + "\t" + v + "\n";
    return Request(version, "", WriteTsv(version + ".tsv", text));
  }
  WriteRequest Delta(const std::string& version, const std::string& on, const Changes& changes) {
    std::string text;
    for (const auto& [k, v] : changes)
      text += k + "\t" + (v ? *v : "\\N") + "\n";
    return Request(version, on, WriteTsv(version + ".tsv", text));
  }
  WriteRequest Request(const std::string& version, const std::string& on, const std::string& tsv) {
    WriteRequest req = MakeWriteRequest(root_, "ranker", version, TsvSource{tsv});
    req.layout = layout_;
    req.scratch_dir = scratch_;
    req.chunking = chunk::ChunkerParams{2 << 10, 8 << 10, 32 << 10};
    req.delta_on = on;
    return req;
  }
  std::string WriteTsv(const std::string& name, const std::string& text) {
    std::string path = dir_ / name;
    testing::WriteAll(path, std::as_bytes(std::span(text)));
    return path;
  }
  // Every live key of the version's chain, opened from the volume (either layout).
  Model Content(const std::string& version) {
    auto chain = ResolveChain(&env_, root_, "ranker", version);
    EXPECT_TRUE(chain.has_value()) << chain.error().ToString();
    if (!chain) return {};
    auto opened = OpenedChain::Open(&env_, root_, "ranker", *chain, scratch_);
    EXPECT_TRUE(opened.has_value()) << opened.error().ToString();
    if (!opened) return {};
    Model content;
    auto st = msf::ForEachLive(opened->layers(), [&](auto key, auto value) {
      std::string k(reinterpret_cast<const char*>(key.data()), key.size());
      EXPECT_EQ(content.count(k), 0u) << "key visited twice: " << k;
      content[k] = std::string(reinterpret_cast<const char*>(value.data()), value.size());
      return true;
    });
    EXPECT_TRUE(st.has_value()) << st.error().ToString();
    return content;
  }
  static void Apply(Model& model, const Changes& changes) {
    for (const auto& [k, v] : changes) {
      if (v)
        model[k] = *v;
      else
        model.erase(k);
    }
  }
  std::vector<std::string> Names(const WriteResult& r) {
    std::vector<std::string> names;
    for (const ChainEntry& e : r.chain)
      names.push_back(e.version);
    return names;
  }
  WriteRequest::Layout layout_ = WriteRequest::Layout::kWholeFile;
};

// n rows k1000, k1001, ...; values of about `width` bytes, varied so FastCDC finds cut points.
Model Rows(int n, size_t width = 0) {
  Model rows;
  for (int i = 0; i < n; ++i) {
    std::string value = "value-" + std::to_string(i * 7919 % 100003);
    for (uint64_t x = i + 1; value.size() < width; x = x * 6364136223846793005ull + 1)
      value += std::to_string(x >> 40);
    rows["k" + std::to_string(1000 + i)] = value;
  }
  return rows;
}

TEST(TsvTombstoneTest, BackslashNAloneDeletesAndDoubledIsALiteral) {
  std::string key, value;
  TsvLine kind{};
  ASSERT_TRUE(ParseTsvLine("gone\t\\N", 1, &key, &value, &kind).has_value());
  EXPECT_EQ(kind, TsvLine::kTombstone);
  EXPECT_EQ(key, "gone");
  ASSERT_TRUE(ParseTsvLine("gone\t\\N\r", 1, &key, &value, &kind).has_value());
  EXPECT_EQ(kind, TsvLine::kTombstone);
  ASSERT_TRUE(ParseTsvLine("lit\t\\\\N", 2, &key, &value, &kind).has_value());
  EXPECT_EQ(kind, TsvLine::kEntry);
  EXPECT_EQ(value, "\\N");
  ASSERT_TRUE(ParseTsvLine("", 3, &key, &value, &kind).has_value());
  EXPECT_EQ(kind, TsvLine::kBlank);
  auto inside = ParseTsvLine("k\ta\\N", 4, &key, &value, &kind);
  ASSERT_FALSE(inside.has_value());
  EXPECT_NE(inside.error().message().find("line 4: value: \\N is only a whole value"),
            std::string::npos)
      << inside.error().message();
  EXPECT_FALSE(ParseTsvLine("a\\N\t1", 5, &key, &value, &kind).has_value());
}

TEST_F(DeltaWriteTest, ATombstoneInAFullWriteIsRefusedNamingTheLine) {
  auto r = WriteVersion(&env_, Request("v1", "", WriteTsv("t.tsv", "a\t1\nb\t\\N\n")));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(
      r.error().message().find("line 2: key<TAB>\\N deletes a key, which only a delta can do"),
      std::string::npos)
      << r.error().message();
}

TEST_F(DeltaWriteTest, DeltaOnFullThenDeltaOnDelta) {
  Model model = Rows(500, 100);
  auto v1 = WriteVersion(&env_, Full("v1", model));
  ASSERT_TRUE(v1.has_value()) << v1.error().ToString();
  EXPECT_EQ(v1->chain_depth, 0u);
  EXPECT_EQ(Names(*v1), std::vector<std::string>{"v1"});

  // "lit" is written `\\N` in the file: the two-byte value \N, not a tombstone.
  Changes c2{{"k1000", "new"}, {"k1001", std::nullopt}, {"fresh", "f"}, {"lit", "\\\\N"}};
  auto v2 = WriteVersion(&env_, Delta("v2", "v1", c2));
  ASSERT_TRUE(v2.has_value()) << v2.error().ToString();
  EXPECT_EQ(v2->delta_base, "v1");
  EXPECT_EQ(v2->chain_depth, 1u);
  EXPECT_EQ(v2->tombstones, 1u);
  EXPECT_FALSE(v2->compacted);
  EXPECT_EQ(Names(*v2), (std::vector<std::string>{"v2", "v1"}));
  EXPECT_EQ(v2->chain[1].bytes, v1->bytes);
  EXPECT_LT(v2->bytes, v1->bytes / 4) << "a delta holds the changes only";
  auto file = OpenModelFile(&env_, v2->path, msf::VerifyLevel::kFull);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  const msf::Header& h = file->reader.header();
  EXPECT_TRUE(h.delta);
  EXPECT_EQ(h.base_version, "v1");
  EXPECT_EQ(FormatChecksum(h.base_checksum), v1->checksum);
  EXPECT_EQ(h.chain_depth, 1u);
  EXPECT_EQ(h.tombstone_count, 1u);
  c2["lit"] = "\\N";
  Apply(model, c2);
  EXPECT_EQ(Content("v2"), model);

  Changes c3{{"k1001", "back"}, {"fresh", std::nullopt}, {"k1002", std::nullopt}};
  auto v3 = WriteVersion(&env_, Delta("v3", "v2", c3));
  ASSERT_TRUE(v3.has_value()) << v3.error().ToString();
  EXPECT_EQ(v3->chain_depth, 2u);
  EXPECT_EQ(v3->delta_base, "v2");
  EXPECT_EQ(Names(*v3), (std::vector<std::string>{"v3", "v2", "v1"}));
  Apply(model, c3);
  EXPECT_EQ(Content("v3"), model);
  EXPECT_EQ(ScratchFiles(), 0u);
}

TEST_F(DeltaWriteTest, DepthLimitRefusesAndSaysToCompact) {
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", Rows(50))).has_value());
  for (int v = 2; v <= 3; ++v) {
    auto req = Delta("v" + std::to_string(v), "v" + std::to_string(v - 1), {{"k1000", "x"}});
    req.max_chain = 2;
    ASSERT_TRUE(WriteVersion(&env_, req).has_value());
  }
  auto req = Delta("v4", "v3", {{"k1001", "y"}});
  req.max_chain = 2;
  auto r = WriteVersion(&env_, req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.error().message(),
            "chain of ranker v4 would hold 3 deltas (limit 2): compact it (write --compact)");
  EXPECT_FALSE(fs::exists(VersionPath(root_, "ranker", "v4")));
  // The format's limit is the most a writer may allow.
  req.max_chain = 8;
  auto over = WriteVersion(&env_, req);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code(), Code::kInvalidArgument);
}

TEST_F(DeltaWriteTest, AutoCompactionOnDepth) {
  Model model = Rows(200);
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", model)).has_value());
  Changes c2{{"k1000", "two"}, {"k1003", std::nullopt}};
  ASSERT_TRUE(WriteVersion(&env_, Delta("v2", "v1", c2)).has_value());
  Apply(model, c2);
  Changes c3{{"k1000", "three"}, {"k1004", std::nullopt}, {"new", "n"}};
  auto req = Delta("v3", "v2", c3);
  req.max_chain = 1;
  req.auto_compact = true;
  auto r = WriteVersion(&env_, req);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->compacted);
  EXPECT_EQ(r->chain_depth, 0u);
  EXPECT_EQ(Names(*r), std::vector<std::string>{"v3"});
  auto file = OpenModelFile(&env_, r->path, msf::VerifyLevel::kFull);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  EXPECT_FALSE(file->reader.header().delta);
  Apply(model, c3);
  EXPECT_EQ(Content("v3"), model);
  EXPECT_EQ(r->entry_count, model.size());
}

TEST_F(DeltaWriteTest, AutoCompactionOnRatio) {
  Model model = Rows(400);
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", model)).has_value());
  // A small change stays a delta.
  auto small = Delta("v2", "v1", {{"k1000", "s"}});
  small.auto_compact = true;
  auto v2 = WriteVersion(&env_, small);
  ASSERT_TRUE(v2.has_value()) << v2.error().ToString();
  EXPECT_FALSE(v2->compacted);
  EXPECT_EQ(v2->chain_depth, 1u);
  Apply(model, {{"k1000", "s"}});
  // Rewriting most rows would make the deltas more than half the base: compacted.
  Changes most;
  for (int i = 0; i < 300; ++i)
    most["k" + std::to_string(1000 + i)] = "rewritten-" + std::to_string(i);
  auto big = Delta("v3", "v2", most);
  big.auto_compact = true;
  auto v3 = WriteVersion(&env_, big);
  ASSERT_TRUE(v3.has_value()) << v3.error().ToString();
  EXPECT_TRUE(v3->compacted);
  Apply(model, most);
  EXPECT_EQ(Content("v3"), model);
  // The same change with a ratio it does not pass stays a delta.
  big.version = "v4";
  big.compact_ratio = 100;
  auto v4 = WriteVersion(&env_, big);
  ASSERT_TRUE(v4.has_value()) << v4.error().ToString();
  EXPECT_FALSE(v4->compacted);
  EXPECT_EQ(v4->chain_depth, 2u);
  EXPECT_EQ(Content("v4"), model);
  EXPECT_EQ(ScratchFiles(), 0u);
}

// Random upserts, deletes and re-inserts over four deltas, then a compaction with changes of its
// own on top: the result is a full version equal to the model, in the base's order.
TEST_F(DeltaWriteTest, CompactionEqualsTheModel) {
  std::mt19937 rng(7);
  Model model = Rows(1000);
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", model)).has_value());
  auto random_changes = [&](int round) {
    Changes c;
    for (int i = 0; i < 120; ++i) {
      std::string key = "k" + std::to_string(1000 + rng() % 1300);  // some beyond the base
      if (rng() % 3 == 0)
        c[key] = std::nullopt;
      else
        c[key] = "r" + std::to_string(round) + "-" + std::to_string(rng() % 1000);
    }
    return c;
  };
  for (int v = 2; v <= 5; ++v) {
    Changes c = random_changes(v);
    auto r = WriteVersion(&env_, Delta("v" + std::to_string(v), "v" + std::to_string(v - 1), c));
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    Apply(model, c);
  }
  ASSERT_EQ(Content("v5"), model);
  Changes last = random_changes(6);
  auto req = Delta("v6", "v5", last);
  req.compact = true;
  auto r = WriteVersion(&env_, req);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->compacted);
  Apply(model, last);
  EXPECT_EQ(Content("v6"), model);
  EXPECT_EQ(r->entry_count, model.size());
  // The base's layout: its surviving keys come first, in its order, and the seed is kept.
  auto base = OpenModelFile(&env_, VersionPath(root_, "ranker", "v1"), msf::VerifyLevel::kFull);
  auto compacted = OpenModelFile(&env_, r->path, msf::VerifyLevel::kFull);
  ASSERT_TRUE(base.has_value() && compacted.has_value());
  EXPECT_EQ(compacted->reader.header().hash_seed, base->reader.header().hash_seed);
  std::vector<std::string> base_order, compacted_order;
  (void)base->reader.ForEach([&](auto key, auto) {
    std::string k(reinterpret_cast<const char*>(key.data()), key.size());
    if (model.count(k)) base_order.push_back(k);
    return true;
  });
  (void)compacted->reader.ForEach([&](auto key, auto) {
    compacted_order.push_back(std::string(reinterpret_cast<const char*>(key.data()), key.size()));
    return compacted_order.size() < base_order.size();
  });
  EXPECT_EQ(compacted_order, base_order);
  // Compaction without changes folds the chain as it is.
  WriteRequest plain = MakeWriteRequest(root_, "ranker", "v7", NoChanges{});
  plain.delta_on = "v5";
  plain.compact = true;
  plain.scratch_dir = scratch_;
  auto v7 = WriteVersion(&env_, plain);
  ASSERT_TRUE(v7.has_value()) << v7.error().ToString();
  EXPECT_EQ(Content("v7"), Content("v5"));
  EXPECT_EQ(ScratchFiles(), 0u);
}

TEST_F(DeltaWriteTest, AKeyBothUpsertedAndDeletedNamesBothLines) {
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", Rows(10))).has_value());
  auto r =
      WriteVersion(&env_, Request("v2", "v1", WriteTsv("c.tsv", "a\t1\nk1000\tx\nk1000\t\\N\n")));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("line 3"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("line 2"), std::string::npos) << r.error().message();
  // The same conflict in a compaction's changes.
  auto req = Request("v3", "v1", WriteTsv("d.tsv", "k1001\t\\N\nk1001\ty\n"));
  req.compact = true;
  auto c = WriteVersion(&env_, req);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message().find("line 1"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find("line 2"), std::string::npos) << c.error().message();
  EXPECT_FALSE(fs::exists(VersionPath(root_, "ranker", "v2")));
  EXPECT_FALSE(fs::exists(VersionPath(root_, "ranker", "v3")));
  EXPECT_EQ(ScratchFiles(), 0u);
}

TEST_F(DeltaWriteTest, ChunkedDeltaAndCompactionReuseTheBasesChunks) {
  layout_ = WriteRequest::Layout::kChunked;
  // Rows of ~200 bytes: the index (whose slots hold entry offsets, shifted after a changed
  // length) stays a small part of the file, as with real rows (base_layout.h).
  Model model = Rows(3000, 200);
  auto v1 = WriteVersion(&env_, Full("v1", model));
  ASSERT_TRUE(v1.has_value()) << v1.error().ToString();
  // Near the end of v1's DATA (sorted keys), so few of the compacted version's offsets move.
  Changes c2{{"k3900", "changed"}, {"k3901", std::nullopt}, {"zz-new", "appended"}};
  auto v2 = WriteVersion(&env_, Delta("v2", "v1", c2));
  ASSERT_TRUE(v2.has_value()) << v2.error().ToString();
  EXPECT_TRUE(v2->chunked);
  EXPECT_EQ(v2->chain_depth, 1u);
  EXPECT_TRUE(fs::exists(JoinPath(VersionsDir(root_, "ranker"), chunk::RecipeFileName("v2"))));
  EXPECT_LT(v2->bytes, v1->bytes / 4);
  Apply(model, c2);
  EXPECT_EQ(Content("v2"), model);
  auto req = Delta("v3", "v2", {});
  req.compact = true;
  req.source = NoChanges{};
  auto v3 = WriteVersion(&env_, req);
  ASSERT_TRUE(v3.has_value()) << v3.error().ToString();
  EXPECT_TRUE(v3->compacted);
  EXPECT_EQ(Content("v3"), model);
  // Laid out like v1, the compacted version shares most of its chunks.
  EXPECT_GT(v3->chunks.bytes_reused, v3->bytes / 2) << v3->chunks.bytes_new << " new";
  EXPECT_EQ(ScratchFiles(), 0u);
}

TEST_F(DeltaWriteTest, AMissingBaseIsNamed) {
  auto r = WriteVersion(&env_, Delta("v2", "v1", {{"a", "1"}}));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("v1"), std::string::npos) << r.error().message();
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", Rows(20))).has_value());
  ASSERT_TRUE(WriteVersion(&env_, Delta("v2", "v1", {{"a", "1"}})).has_value());
  fs::remove(VersionPath(root_, "ranker", "v1"));
  auto on_v2 = WriteVersion(&env_, Delta("v3", "v2", {{"b", "2"}}));
  ASSERT_FALSE(on_v2.has_value());
  EXPECT_NE(on_v2.error().message().find("needs base v1"), std::string::npos)
      << on_v2.error().message();
  EXPECT_FALSE(fs::exists(VersionPath(root_, "ranker", "v3")));
}

TEST_F(DeltaWriteTest, ABaseReplacedUnderItsNameIsNamed) {
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", Rows(20))).has_value());
  auto v2 = WriteVersion(&env_, Delta("v2", "v1", {{"a", "1"}}));
  ASSERT_TRUE(v2.has_value());
  // Another v1: same name, other content, so another checksum.
  fs::remove(VersionPath(root_, "ranker", "v1"));
  auto other = WriteVersion(&env_, Full("v1", Rows(21)));
  ASSERT_TRUE(other.has_value());
  for (bool compact : {false, true}) {
    auto req = Delta("v3", "v2", {{"b", "2"}});
    req.compact = compact;
    auto r = WriteVersion(&env_, req);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message().find("v1"), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(other->checksum), std::string::npos) << r.error().message();
  }
}

// The full base is checked while it is folded, not before: a flipped byte in one of its values
// fails the compaction, naming the section, and leaves nothing behind.
TEST_F(DeltaWriteTest, ACorruptBaseFailsTheCompaction) {
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", Rows(2000, 100))).has_value());
  ASSERT_TRUE(WriteVersion(&env_, Delta("v2", "v1", {{"k1000", "x"}})).has_value());
  const std::string v1 = VersionPath(root_, "ranker", "v1");
  auto bytes = testing::ReadAll(v1);
  bytes[4096 + 150000] ^= std::byte{1};  // inside DATA, in some row's value
  testing::WriteAll(v1, bytes);
  auto req = Delta("v3", "v2", {});
  req.source = NoChanges{};
  req.compact = true;
  auto r = WriteVersion(&env_, req);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find("v1: section 0 (data) checksum mismatch"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(fs::exists(VersionPath(root_, "ranker", "v3")));
  EXPECT_EQ(ScratchFiles(), 0u);
}

// A writer Job retried after its delta was written reports the same delta, chain included.
TEST_F(DeltaWriteTest, ARetriedDeltaReusesTheWrittenOneAndReportsItsChain) {
  for (auto layout : {WriteRequest::Layout::kWholeFile, WriteRequest::Layout::kChunked}) {
    layout_ = layout;
    const std::string base = layout == WriteRequest::Layout::kChunked ? "c1" : "w1";
    ASSERT_TRUE(WriteVersion(&env_, Full(base, Rows(100))).has_value());
    auto req = Delta(base + "-d", base, {{"k1000", "x"}, {"k1001", std::nullopt}});
    auto first = WriteVersion(&env_, req);
    ASSERT_TRUE(first.has_value()) << first.error().ToString();
    req.reuse_existing = true;
    auto again = WriteVersion(&env_, req);
    ASSERT_TRUE(again.has_value()) << again.error().ToString();
    EXPECT_TRUE(again->reused);
    EXPECT_EQ(again->checksum, first->checksum);
    EXPECT_EQ(again->delta_base, base);
    EXPECT_EQ(again->chain_depth, 1u);
    EXPECT_EQ(Names(*again), (std::vector<std::string>{base + "-d", base}));
  }
}

TEST_F(DeltaWriteTest, RequestsThatMakeNoSenseAreRefused) {
  ASSERT_TRUE(WriteVersion(&env_, Full("v1", Rows(20))).has_value());
  auto code = [&](const WriteRequest& req) {
    auto r = WriteVersion(&env_, req);
    return r ? Code::kOk : r.error().code();
  };
  EXPECT_EQ(code(Delta("v2", "v2", {})), Code::kInvalidArgument);
  WriteRequest generated = MakeWriteRequest(root_, "ranker", "v3", GenerateSource{1000, 1, 10});
  generated.delta_on = "v1";
  EXPECT_EQ(code(generated), Code::kInvalidArgument);
  WriteRequest compact_alone = MakeWriteRequest(root_, "ranker", "v3", NoChanges{});
  compact_alone.compact = true;
  EXPECT_EQ(code(compact_alone), Code::kInvalidArgument);
  auto with_base = Delta("v3", "v1", {{"a", "1"}});
  with_base.base_version = "v1";
  EXPECT_EQ(code(with_base), Code::kInvalidArgument);
  auto ratio = Delta("v3", "v1", {{"a", "1"}});
  ratio.compact_ratio = 0;
  EXPECT_EQ(code(ratio), Code::kInvalidArgument);
}

}  // namespace
}  // namespace modelswap
