// Delta versions served as chains by a real agent process (loader.h, LoadVersion): the hot-swap
// torn-read test over a chain (a full base, deltas, a compaction, more deltas) with C++ and
// Python reader processes looking keys up throughout; a base loaded once and shared by the deltas
// on it (the agent's load counters); and deltas whose base is missing, of another checksum or of
// another model, rejected with the old version serving.
#include <filesystem>
#include <fstream>
#include <set>

#include "sidecar/writer/publish.h"
#include "tests/sidecar/agent/chain_spec.h"
#include "tests/sidecar/agent/reader_processes.h"
#include "tests/testing/write_request.h"

namespace modelswap::testing {
namespace {

constexpr uint64_t kKeys = 1500;
constexpr const char* kSmallChain = "c0,d1";  // a base and one delta on it

class ChainTest : public AgentFixture {
 protected:
  // Writes version `index` of the spec (the base, a delta on the previous version, or a
  // compaction) as a whole file on the volume.
  WriteResult WriteSpec(const std::string& spec_text, size_t index, const std::string& model = "",
                        const std::string& root = "") {
    return WriteSpecAs(spec_text, index, WriteRequest::Layout::kWholeFile, model, root);
  }
  WriteResult WriteSpecAs(const std::string& spec_text, size_t index, WriteRequest::Layout layout,
                          const std::string& model = "", const std::string& root = "") {
    auto spec = ParseChainSpec(spec_text);
    const ChainSpecEntry& e = spec[index];
    std::string m = model.empty() ? kModel : model;
    std::string tsv = dir_ / (m + "-" + e.version + ".tsv");
    std::ofstream(tsv) << SpecTsv(spec, index, m, kKeys);
    WriteRequest req = MakeWriteRequest(root.empty() ? root_ : root, m, e.version, TsvSource{tsv});
    req.max_chain = 7;
    req.layout = layout;
    if (layout == WriteRequest::Layout::kChunked) {
      req.scratch_dir = dir_.path();
      req.chunking = chunk::ChunkerParams{1 << 10, 4 << 10, 16 << 10};
    }
    if (e.kind == ChainSpecEntry::Kind::kDelta) req.delta_on = spec[index - 1].version;
    if (e.kind == ChainSpecEntry::Kind::kCompact) {
      req.compact = true;
      req.delta_on = spec[static_cast<size_t>(e.source)].version;
      req.source = NoChanges{};
    }
    auto w = WriteVersion(DefaultEnv(), req);
    EXPECT_TRUE(w.has_value()) << e.version << ": " << w.error().ToString();
    return w.value_or(WriteResult{});
  }
  Manifest PublishSpec(const std::string& spec_text, size_t index,
                       WriteRequest::Layout layout = WriteRequest::Layout::kWholeFile) {
    WriteSpecAs(spec_text, index, layout);
    auto spec = ParseChainSpec(spec_text);
    auto m = PublishAnyVersion(DefaultEnv(), root_, kModel, spec[index].version);
    EXPECT_TRUE(m.has_value()) << m.error().ToString();
    return m.value_or(Manifest{});
  }
  // A manifest for `version` whose chain names `lower` as it is on the volume now (a test
  // makes it disagree with the delta's header, or lets a file go missing afterwards).
  Manifest PublishWithChain(const std::string& version, const std::vector<std::string>& lower,
                            const std::vector<WriteResult>& lower_writes, const WriteResult& top) {
    Manifest m{kModel, version, "versions/" + version + ".msf", top.bytes, top.checksum, 0, "",
               "",     {}};
    for (size_t i = 0; i < lower.size(); ++i) {
      m.chain.push_back(ManifestLayer{lower[i], "versions/" + lower[i] + ".msf",
                                      lower_writes[i].checksum, lower_writes[i].bytes, ""});
    }
    auto p = PublishManifest(DefaultEnv(), root_, m);
    EXPECT_TRUE(p.has_value()) << p.error().ToString();
    return p.value_or(Manifest{});
  }
  void HotSwapOverAChain(WriteRequest::Layout layout);
  // a0, a plain version, active (what serves while a bad chain is rejected); then c0 and d1 of
  // kSmallChain written, not published. Wrap in ASSERT_NO_FATAL_FAILURE.
  void ServeA0ThenWriteC0D1(WriteResult* c0, WriteResult* d1) {
    ASSERT_NO_FATAL_FAILURE(ServeA0());
    *c0 = WriteSpec(kSmallChain, 0);
    *d1 = WriteSpec(kSmallChain, 1);
  }
  void ServeA0() {
    Publish("a0");
    StartAgent();
    ASSERT_TRUE(WaitActive(1));
  }
  // The old version keeps serving and the rejection names the delta and `why`.
  void ExpectRejected(const std::string& version, const std::string& why, uint64_t serving) {
    ASSERT_TRUE(PollUntil([&] {
      auto m = ModelStatus();
      return !m.is_null() && m["last_rejected"].is_object() &&
             m["last_rejected"]["version"] == version;
    })) << ModelStatus().dump();
    auto m = ModelStatus();
    std::string reason = m["last_rejected"]["reason"];
    EXPECT_NE(reason.find(why), std::string::npos) << reason;
    EXPECT_EQ(m["active"]["generation"], serving) << m.dump();
    EXPECT_GE(m["rejections"], 1);
    std::string metrics = HttpGet(port_, "/metrics").body;
    EXPECT_NE(metrics.find("modelswap_agent_rejections_total{model=\"ranker\"} "),
              std::string::npos);
    EXPECT_NE(ReadFile(log_).find("reject model=ranker version=" + version), std::string::npos);
  }
};

// The hot-swap torn-read test (hot_swap_test.cc) over a chain, in either layout: chunked layers
// are assembled in the node cache, whole ones mapped from the volume.
void ChainTest::HotSwapOverAChain(WriteRequest::Layout layout) {
  const bool chunked = layout == WriteRequest::Layout::kChunked;
  const std::string spec = "c0,d1,d2,d3,c4=d3,d5,d6,d7,c8=d7";
  const auto entries = ParseChainSpec(spec);
  PublishSpec(spec, 0, layout);
  std::string cache = dir_ / "cache";
  if (chunked) {
    StartAgent({"--grace-period", "600000", "--cache-dir", cache});
  } else {
    StartAgent({"--grace-period", "600000"});
  }
  ASSERT_TRUE(WaitLoaded(1));
  const std::string last = entries.back().version;
  const Readers readers = StartReaders(dir_, shm_, 2, last, ChainCheck{spec, kKeys});
  ASSERT_TRUE(WaitReading(readers));
  for (size_t i = 1; i < entries.size(); ++i) {
    PublishSpec(spec, i, layout);
    ASSERT_TRUE(WaitLoaded(i + 1));
    auto active = ModelStatus()["active"];
    EXPECT_EQ(active["layout"], chunked ? "chunked" : "whole");
    EXPECT_EQ(active["chain"]["length"], SpecLayers(entries, i)) << entries[i].version;
    EXPECT_EQ(active["chain"]["layers_loaded"], 1) << entries[i].version << ": only itself";
  }
  ASSERT_NO_FATAL_FAILURE(ExpectReadersFinished(readers, last));
  // c8 is a full version: once readers are gone every layer of the chains before it is dropped.
  std::string last_file = ModelStatus()["active"]["file"];
  if (chunked) {
    EXPECT_TRUE(last_file.starts_with(cache + "/")) << last_file;
  }
  EXPECT_TRUE(WaitOnlyMapped(last_file));
  auto m = ModelStatus();
  EXPECT_EQ(m["swaps"], entries.size());
  EXPECT_EQ(m["rejections"], 0);
  // Each version loaded only its own layer; its lower layers were the ones already loaded.
  EXPECT_EQ(m["layer_loads"], entries.size());
  EXPECT_EQ(m["layer_shares"], 0 + 1 + 2 + 3 + 0 + 1 + 2 + 3 + 0);
}

TEST_F(ChainTest, HotSwapOverAChainHasNoTornReads) {
  HotSwapOverAChain(WriteRequest::Layout::kWholeFile);
}

TEST_F(ChainTest, HotSwapOverAChunkedChainHasNoTornReads) {
  HotSwapOverAChain(WriteRequest::Layout::kChunked);
}

TEST_F(ChainTest, TheBaseIsLoadedOnceAndSharedByItsDeltas) {
  const std::string spec = "c0,d1,d2";
  PublishSpec(spec, 0);
  StartAgent({"--grace-period", "600000"});
  ASSERT_TRUE(WaitActive(1));
  PublishSpec(spec, 1);
  ASSERT_TRUE(WaitActive(2));
  PublishSpec(spec, 2);
  ASSERT_TRUE(WaitActive(3));
  auto m = ModelStatus();
  EXPECT_EQ(m["layer_loads"], 3) << "c0, d1 and d2 each mapped and verified once";
  EXPECT_EQ(m["layer_shares"], 3) << "d1 shared c0; d2 shared d1 and c0";
  auto layers = m["active"]["chain"]["layers"];
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0]["version"], "d2");
  EXPECT_EQ(layers[1]["version"], "d1");
  EXPECT_EQ(layers[2]["version"], "c0");
  EXPECT_EQ(layers[2]["delta"], false);
  EXPECT_GT(layers[2]["bytes"], layers[0]["bytes"]);
  // The agent maps each file once (a shared layer is one mapping).
  std::map<std::string, int> mappings;
  std::istringstream maps(ReadFile("/proc/" + std::to_string(agent_) + "/maps"));
  for (std::string line; std::getline(maps, line);) {
    size_t at = line.find('/');
    if (at != std::string::npos && line.ends_with(".msf") && line.find(" 00000000 ") != line.npos)
      mappings[line.substr(at)]++;
  }
  EXPECT_EQ(mappings[VersionFile("c0")], 1)
      << ReadFile("/proc/" + std::to_string(agent_) + "/maps");
  std::string metrics = HttpGet(port_, "/metrics").body;
  EXPECT_NE(metrics.find("modelswap_agent_active_chain_length{model=\"ranker\"} 3"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("modelswap_agent_active_layer_bytes{depth=\"2\",model=\"ranker\"}"),
            std::string::npos)
      << metrics;
  // A fresh agent finds the chain published: it loads the three layers at once.
  StopAgent();
  StartAgent();
  ASSERT_TRUE(WaitActive(3));
  m = ModelStatus();
  EXPECT_EQ(m["layer_loads"], 3);
  EXPECT_EQ(m["layer_shares"], 0);
  EXPECT_EQ(m["active"]["chain"]["length"], 3);
}

TEST_F(ChainTest, ADeltaWhoseBaseIsMissingIsRejected) {
  WriteResult c0, d1;
  ASSERT_NO_FATAL_FAILURE(ServeA0ThenWriteC0D1(&c0, &d1));
  std::filesystem::remove(VersionFile("c0"));
  PublishWithChain("d1", {"c0"}, {c0}, d1);
  ExpectRejected("d1", "base layer c0", 1);
}

TEST_F(ChainTest, ADeltaOnABaseWithAnotherChecksumIsRejected) {
  WriteResult c0, d1;
  ASSERT_NO_FATAL_FAILURE(ServeA0ThenWriteC0D1(&c0, &d1));
  // c0 written again (other content, so another checksum) after d1 was written on the first one;
  // the manifest names the file as it is now, so only the delta's header tells.
  std::filesystem::remove(VersionFile("c0"));
  WriteRequest req = MakeWriteRequest(root_, kModel, "c0", GenerateSource{16 << 10, 99, 48});
  auto other = WriteVersion(DefaultEnv(), req);
  ASSERT_TRUE(other.has_value()) << other.error().ToString();
  PublishWithChain("d1", {"c0"}, {*other}, d1);
  ExpectRejected("d1", "names base c0", 1);
}

TEST_F(ChainTest, ADeltaOnABaseOfAnotherModelIsRejected) {
  WriteResult c0, d1;
  ASSERT_NO_FATAL_FAILURE(ServeA0ThenWriteC0D1(&c0, &d1));
  // Another model's c0 put in its place (a copy gone wrong).
  std::string other_root = dir_ / "other";
  std::filesystem::create_directories(other_root);
  WriteResult oc0 = WriteSpec(kSmallChain, 0, "scorer", other_root);
  std::filesystem::copy_file(VersionPath(other_root, "scorer", "c0"), VersionFile("c0"),
                             std::filesystem::copy_options::overwrite_existing);
  PublishWithChain("d1", {"c0"}, {oc0}, d1);
  ExpectRejected("d1", "scorer", 1);
}

TEST_F(ChainTest, ADeltaWithoutItsChainIsRejected) {
  WriteResult c0, d1;
  ASSERT_NO_FATAL_FAILURE(ServeA0ThenWriteC0D1(&c0, &d1));
  PublishWithChain("d1", {}, {}, d1);  // a manifest that lost its chain field
  ExpectRejected("d1", "names no chain", 1);
}

TEST_F(ChainTest, ABaseTruncatedUnderTheMappingDropsTheChainAndFallsBack) {
  const std::string spec = kSmallChain;
  ASSERT_NO_FATAL_FAILURE(ServeA0());
  PublishSpec(spec, 0);
  ASSERT_TRUE(WaitActive(2));
  PublishSpec(spec, 1);
  ASSERT_TRUE(WaitActive(3));
  // c0 is d1's base (and the version before it): both are gone with it; a0 is intact.
  std::filesystem::resize_file(VersionFile("c0"), 4096);
  ASSERT_TRUE(PollUntil([&] {
    auto m = ModelStatus();
    return !m.is_null() && m["active"].is_object() && m["active"]["version"] == "a0";
  })) << ModelStatus().dump();
  auto m = ModelStatus();
  EXPECT_EQ(m["truncations"], 1);
  std::string degraded = m["degraded"];
  EXPECT_NE(degraded.find("layer c0 truncated"), std::string::npos) << degraded;
  EXPECT_EQ(m["active"]["chain"]["length"], 1);
}

}  // namespace
}  // namespace modelswap::testing
