// Chunked versions through the node cache, with real agent and reader processes: a chunked
// version loads and serves its values, whole-file and chunked versions alternate in one model,
// two agents sharing one cache fetch each chunk once and map one inode, a corrupt chunk or a
// truncated recipe rejects the version (the old one keeps serving), and hot swaps over chunked
// versions read nothing torn.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "sidecar/chunk/recipe.h"
#include "tests/sidecar/agent/agent_fixture.h"
#include "tests/testing/write_request.h"

namespace modelswap::testing {
namespace {

class ChunkedAgentTest : public AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    cache_ = dir_ / "cache";
    scratch_ = dir_ / "scratch";
    std::filesystem::create_directories(scratch_);
  }

  // Writes <version> as chunks + recipe (no .msf on the volume); seed varies the content. With a
  // base, the layout of that version is kept and new chunks may be stored as delta chunks.
  WriteResult WriteChunked(const std::string& version, uint64_t seed = 7,
                           const std::string& base = "") {
    WriteRequest req =
        MakeWriteRequest(root_, kModel, version, GenerateSource{256 << 10, seed, 48});
    req.layout = WriteRequest::Layout::kChunked;
    req.base_version = base;
    req.scratch_dir = scratch_;
    req.chunking = chunk::ChunkerParams{4 << 10, 8 << 10, 32 << 10};
    auto r = WriteVersion(DefaultEnv(), req);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_FALSE(std::filesystem::exists(VersionFile(version)));
    return r.value_or(WriteResult{});
  }
  Manifest PublishWritten(const std::string& version, const WriteResult& w) {
    Manifest m;
    m.model = kModel;
    m.version = version;
    m.file = "versions/" + version + ".msf";
    m.bytes = w.bytes;
    m.checksum = w.checksum;
    m.recipe = RecipeFieldFor(version);
    auto p = PublishManifest(DefaultEnv(), root_, m);
    EXPECT_TRUE(p.has_value()) << p.error().ToString();
    return p.value_or(Manifest{});
  }
  Manifest PublishChunked(const std::string& version, uint64_t seed = 7) {
    return PublishWritten(version, WriteChunked(version, seed));
  }
  chunk::Recipe RecipeOf(const std::string& version) {
    auto r = chunk::ReadRecipeBeneath(DefaultEnv(), root_, chunk::RecipeRel(kModel, version));
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(chunk::Recipe{});
  }
  std::vector<std::string> CacheFlags() { return {"--cache-dir", cache_}; }

  // Runs a reader until it has looked values up in `version` (and checked each belongs to it).
  void ExpectServes(const std::string& shm, const std::string& version) {
    std::string progress = dir_ / ("serves-" + version + ".progress");
    pid_t r = Spawn({READER_HELPER_BIN, "follow", "--shm-dir", shm, "--model", kModel, "--until",
                     version, "--progress", progress, "--deadline-ms", "60000"},
                    dir_ / "readers.log");
    auto st = WaitFor(r, std::chrono::seconds(90));
    ASSERT_TRUE(st.has_value()) << "reader did not finish";
    ReaderProgress p = ReadProgress(progress);
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << ReadFile(progress);
    EXPECT_EQ(p.torn, 0u);
    EXPECT_EQ(p.last, version);
  }
  ::testing::AssertionResult WaitRejected(const std::string& version, int port) {
    nlohmann::json m;
    bool ok = PollUntil(
        [&] {
          auto s = AgentStatus(port);
          if (s.is_null()) return false;
          m = s["models"][kModel];
          return m["last_rejected"].is_object() && m["last_rejected"]["version"] == version;
        },
        std::chrono::seconds(60));
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << version << " never rejected; status " << m.dump();
  }

  std::string cache_, scratch_;
};

// (device, inode) of the .msf files a process maps, from /proc/<pid>/maps.
std::set<std::pair<std::string, std::string>> MappedInodes(pid_t pid) {
  std::set<std::pair<std::string, std::string>> out;
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(in, line);) {
    if (!line.ends_with(".msf")) continue;
    std::istringstream f(line);
    std::string range, perms, offset, dev, inode;
    f >> range >> perms >> offset >> dev >> inode;
    out.emplace(dev, inode);
  }
  return out;
}

TEST_F(ChunkedAgentTest, ChunkedVersionLoadsThroughTheCacheAndServesItsValues) {
  PublishChunked("v1");
  StartAgent(CacheFlags());
  ASSERT_TRUE(WaitLoaded(1));
  auto m = ModelStatus();
  auto a = m["active"];
  EXPECT_EQ(a["layout"], "chunked") << m.dump();
  EXPECT_TRUE(a["file"].get<std::string>().starts_with(cache_ + "/versions/")) << a.dump();
  chunk::Recipe recipe = RecipeOf("v1");
  EXPECT_EQ(a["assemble"]["chunks_total"], recipe.chunks.size());
  EXPECT_GT(a["assemble"]["chunks_fetched"].get<uint64_t>(), 0u);
  EXPECT_EQ(a["assemble"]["already_assembled"], false);
  auto s = AgentStatus(port_);
  EXPECT_EQ(s["cache"]["kind"], "node") << s["cache"].dump();
  EXPECT_EQ(s["cache"]["dir"], cache_);
  // The first eviction pass measured the cache: at least the assembled file is in it.
  EXPECT_TRUE(PollUntil([&] {
    auto c = AgentStatus(port_)["cache"];
    return c["allocated_bytes"].get<uint64_t>() >= recipe.file_bytes / 2;
  })) << AgentStatus(port_)["cache"].dump();
  std::string metrics = HttpGet(port_, "/metrics").body;
  EXPECT_NE(metrics.find("modelswap_agent_active_layout{layout=\"chunked\",model=\"ranker\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("modelswap_agent_cache_allocated_bytes"), std::string::npos);
  EXPECT_NE(
      metrics.find("modelswap_agent_active_assemble_chunks{model=\"ranker\",source=\"fetched\"}"),
      std::string::npos);
  ExpectServes(shm_, "v1");
}

TEST_F(ChunkedAgentTest, WithoutACacheDirAPerPodFallbackIsUsedAndSaidSo) {
  PublishChunked("v1");
  StartAgent();
  ASSERT_TRUE(WaitLoaded(1));
  auto c = AgentStatus(port_)["cache"];
  EXPECT_EQ(c["kind"], "per-pod") << c.dump();
  EXPECT_EQ(c["dir"], shm_ + "/chunk-cache");
  ExpectServes(shm_, "v1");
}

// A version written on a base (`write --base v1`) whose changed chunks are stored as delta
// chunks: the agent assembles it with the bases from the version it holds, serves its values,
// and says in status how many deltas it fetched and where their bases came from.
TEST_F(ChunkedAgentTest, DeltaChunksOnABaseAssembleFromTheHeldVersionAndServe) {
  PublishChunked("v1");
  StartAgent(CacheFlags());
  ASSERT_TRUE(WaitLoaded(1));
  ExpectServes(shm_, "v1");
  // Same rows, new version name: each value names its version, so every chunk changes by a few
  // bytes a row, which is what a delta chunk is for.
  WriteResult w = WriteChunked("v2", 7, "v1");
  ASSERT_GT(w.chunks.chunks_delta, 0u);
  chunk::Recipe r2 = RecipeOf("v2");
  size_t deltas = 0;
  for (const auto& c : r2.chunks)
    deltas += c.delta ? 1 : 0;
  ASSERT_EQ(deltas, w.chunks.chunks_delta);
  PublishWritten("v2", w);
  ASSERT_TRUE(WaitLoaded(2));
  auto m = ModelStatus();
  auto a = m["active"]["assemble"];
  EXPECT_EQ(m["active"]["version"], "v2") << m.dump();
  EXPECT_GT(a["delta_chunks_fetched"].get<uint64_t>(), 0u) << a.dump();
  EXPECT_EQ(a["bases_fetched"], 0u) << a.dump();  // every base was on the node already
  EXPECT_GT(a["bases_from_cache"].get<uint64_t>() + a["bases_from_previous"].get<uint64_t>(), 0u)
      << a.dump();
  EXPECT_EQ(m["rejections"], 0);
  ExpectServes(shm_, "v2");
}

TEST_F(ChunkedAgentTest, WholeThenChunkedThenWholeSwap) {
  Publish("v1");
  StartAgent(CacheFlags());
  ASSERT_TRUE(WaitLoaded(1));
  EXPECT_EQ(ModelStatus()["active"]["layout"], "whole");
  ExpectServes(shm_, "v1");
  PublishChunked("v2", 8);
  ASSERT_TRUE(WaitLoaded(2));
  EXPECT_EQ(ModelStatus()["active"]["layout"], "chunked");
  ExpectServes(shm_, "v2");
  Publish("v3");
  ASSERT_TRUE(WaitLoaded(3));
  auto m = ModelStatus();
  EXPECT_EQ(m["active"]["layout"], "whole");
  EXPECT_FALSE(m["active"].contains("assemble"));
  ExpectServes(shm_, "v3");
  EXPECT_EQ(m["rejections"], 0);
  // No reader holds v1 or v2 any more: both are reclaimed, and the agent maps only v3.
  EXPECT_TRUE(PollUntil([&] { return ModelStatus()["reclaimed"] == 2; })) << ModelStatus().dump();
}

TEST_F(ChunkedAgentTest, TwoAgentsSharingACacheFetchEachChunkOnceAndMapOneInode) {
  PublishChunked("v1");
  std::string shm2 = dir_ / "shm2";
  int port2 = FreePort();
  // Both start before either can have assembled: they race for the build lock.
  pid_t second = Spawn({MODELSWAP_SIDECAR_BIN,
                        "--log-level",
                        "info",
                        "agent",
                        "--root",
                        root_,
                        "--models",
                        kModel,
                        "--shm-dir",
                        shm2,
                        "--listen",
                        "127.0.0.1:" + std::to_string(port2),
                        "--poll-interval",
                        "50",
                        "--heartbeat-interval",
                        "50",
                        "--reader-timeout",
                        "3000",
                        "--cache-dir",
                        cache_},
                       dir_ / "agent2.log");
  ASSERT_GT(second, 0);
  // Killed however the test ends (an ASSERT returns early).
  struct Reaper {
    pid_t pid;
    ~Reaper() { KillAndReap(pid, SIGKILL); }
  } reaper{second};
  StartAgent(CacheFlags());
  ASSERT_TRUE(WaitLoaded(1));
  nlohmann::json b;
  ASSERT_TRUE(PollUntil(
      [&] {
        auto s = AgentStatus(port2);
        if (s.is_null()) return false;
        b = s["models"][kModel];
        return b["active"].is_object() && b["active"]["generation"] == 1;
      },
      std::chrono::seconds(60)))
      << ReadFile(dir_ / "agent2.log");
  auto a = ModelStatus()["active"];
  b = b["active"];
  chunk::Recipe recipe = RecipeOf("v1");
  uint64_t stored = 0;
  for (const auto& c : recipe.chunks)
    stored += c.hole ? 0 : 1;
  // Every chunk came from the volume exactly once on this node (chunks of equal content are one
  // chunk in the cache, hence at most).
  uint64_t fetched = a["assemble"]["chunks_fetched"].get<uint64_t>() +
                     b["assemble"]["chunks_fetched"].get<uint64_t>();
  EXPECT_GT(fetched, 0u);
  EXPECT_LE(fetched, stored) << a.dump() << b.dump();
  // One built it; the other found it built (or waited for the builder and then found it).
  bool a_reused = a["assemble"]["already_assembled"] == true;
  bool b_reused = b["assemble"]["already_assembled"] == true;
  EXPECT_NE(a_reused, b_reused) << a.dump() << b.dump();
  EXPECT_EQ(a["file"], b["file"]);
  auto ia = MappedInodes(agent_), ib = MappedInodes(second);
  EXPECT_EQ(ia.size(), 1u);
  EXPECT_EQ(ia, ib);
  ExpectServes(shm_, "v1");
  ExpectServes(shm2, "v1");
}

TEST_F(ChunkedAgentTest, CorruptChunkRejectsTheVersionNamingItAndTheOldOneServes) {
  Publish("v1");
  StartAgent(CacheFlags());
  ASSERT_TRUE(WaitLoaded(1));
  WriteResult w = WriteChunked("v2", 9);
  chunk::Recipe recipe = RecipeOf("v2");
  const chunk::RecipeChunk* victim = nullptr;
  for (const auto& c : recipe.chunks) {
    if (!c.hole) victim = &c;
  }
  ASSERT_NE(victim, nullptr);
  std::string hex = chunk::ToHex(victim->hash);
  std::string path = root_ + "/.chunks/" + hex.substr(0, 2) + "/" + hex;
  ::chmod(path.c_str(), 0644);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.is_open()) << path;
    f.seekg(0, std::ios::end);
    auto size = static_cast<std::streamoff>(f.tellg());
    f.seekp(size / 2);
    char c = 0;
    f.seekg(size / 2);
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(size / 2);
    f.write(&c, 1);
  }
  PublishWritten("v2", w);
  ASSERT_TRUE(WaitRejected("v2", port_));
  auto m = ModelStatus();
  EXPECT_NE(m["last_rejected"]["reason"].get<std::string>().find(hex), std::string::npos)
      << m.dump();
  EXPECT_EQ(m["active"]["generation"], 1);
  EXPECT_EQ(m["active"]["version"], "v1");
  ExpectServes(shm_, "v1");
  std::string metrics = HttpGet(port_, "/metrics").body;
  EXPECT_NE(metrics.find("modelswap_agent_rejections_total{model=\"ranker\"} 1"), std::string::npos)
      << metrics;
}

TEST_F(ChunkedAgentTest, TruncatedRecipeRejectsTheVersionAndTheOldOneServes) {
  PublishChunked("v1");
  StartAgent(CacheFlags());
  ASSERT_TRUE(WaitLoaded(1));
  WriteResult w = WriteChunked("v2", 10);
  std::string recipe = root_ + "/" + chunk::RecipeRel(kModel, "v2");
  auto size = std::filesystem::file_size(recipe);
  ::chmod(recipe.c_str(), 0644);
  std::filesystem::resize_file(recipe, size - 13);
  PublishWritten("v2", w);
  ASSERT_TRUE(WaitRejected("v2", port_));
  auto m = ModelStatus();
  std::string reason = m["last_rejected"]["reason"];
  EXPECT_NE(reason.find("chunked version v2"), std::string::npos) << reason;
  EXPECT_NE(reason.find("recipe"), std::string::npos) << reason;
  EXPECT_EQ(m["active"]["version"], "v1");
  ExpectServes(shm_, "v1");
}

}  // namespace
}  // namespace modelswap::testing
