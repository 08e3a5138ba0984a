// The hot-swap torn-read test (hot_swap_test.cc) over chunked versions: versions assembled in the
// node cache are swapped in while C++ reader processes and a Python reader look keys up; every
// value must belong to the version of the handle it was read through, every reader must reach
// the last version, and the agent must end up mapping only the last assembled file.
#include <filesystem>
#include <set>

#include "tests/sidecar/agent/agent_fixture.h"

namespace modelswap::testing {
namespace {

constexpr int kVersions = 20;

std::set<std::string> MappedModelFiles(pid_t pid) {
  std::set<std::string> out;
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find('/');
    if (at != std::string::npos && line.ends_with(".msf")) out.insert(line.substr(at));
  }
  return out;
}

class ChunkedHotSwapTest : public AgentFixture {
 protected:
  // Assembling takes threads of its own; a loaded test machine gets a minute, not 20 s.
  ::testing::AssertionResult WaitLoaded(uint64_t gen) {
    if (PollUntil([&] { return ActiveGeneration(gen); }, std::chrono::seconds(60))) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "generation " << gen << " never active; status " << ModelStatus().dump();
  }
  Manifest PublishChunked(const std::string& version) {
    WriteRequest req{root_, kModel, version, GenerateSource{64 << 10, 7, 48}, false};
    req.layout = WriteRequest::Layout::kChunked;
    req.scratch_dir = dir_.path();
    req.chunking = chunk::ChunkerParams{1 << 10, 4 << 10, 16 << 10};
    auto w = WriteVersion(DefaultEnv(), req);
    EXPECT_TRUE(w.has_value()) << w.error().ToString();
    Manifest m{
        kModel, version, "versions/" + version + ".msf", w ? w->bytes : 0, w ? w->checksum : "",
        0,      "",      RecipeFieldFor(version)};
    auto p = PublishManifest(DefaultEnv(), root_, m);
    EXPECT_TRUE(p.has_value()) << p.error().ToString();
    return p.value_or(Manifest{});
  }
};

TEST_F(ChunkedHotSwapTest, HotSwapOverChunkedVersionsHasNoTornReads) {
  std::string cache = dir_ / "cache";
  PublishChunked("v0");
  StartAgent({"--grace-period", "600000", "--cache-dir", cache});
  ASSERT_TRUE(WaitLoaded(1));
  std::string last = "v" + std::to_string(kVersions);
  std::vector<pid_t> readers;
  std::vector<std::string> progress;
  for (int i = 0; i < 2; ++i) {
    progress.push_back(dir_ / ("cpp" + std::to_string(i) + ".progress"));
    readers.push_back(
        Spawn({READER_HELPER_BIN, "follow", "--shm-dir", shm_, "--model", kModel, "--until", last,
               "--progress", progress.back(), "--deadline-ms", "120000"},
              dir_ / "readers.log"));
  }
  progress.push_back(dir_ / "py.progress");
  readers.push_back(Spawn({PYTHON_BIN, PY_READER, shm_, kModel, last, progress.back(), "120"},
                          dir_ / "readers.log", {"MODELSWAP_PYTHON_PATH=" MODELSWAP_PYTHON_PATH}));
  for (const auto& p : progress) {
    ASSERT_TRUE(PollUntil([&] { return ReadProgress(p).lookups > 0; })) << p;
  }
  for (int v = 1; v <= kVersions; ++v) {
    PublishChunked("v" + std::to_string(v));
    ASSERT_TRUE(WaitLoaded(static_cast<uint64_t>(v) + 1));
    ASSERT_EQ(ModelStatus()["active"]["layout"], "chunked");
  }
  for (size_t i = 0; i < readers.size(); ++i) {
    auto st = WaitFor(readers[i], std::chrono::seconds(120));
    ASSERT_TRUE(st.has_value()) << "reader " << i << " did not finish";
    ReaderProgress p = ReadProgress(progress[i]);
    EXPECT_TRUE(p.ok) << ReadFile(progress[i]);
    EXPECT_EQ(p.torn, 0u) << "reader " << i << " read values of another version";
    EXPECT_EQ(p.last, last) << "reader " << i;
    EXPECT_GE(p.versions, 2u) << "reader " << i;
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "reader " << i << " status " << *st;
  }
  std::string last_file = ModelStatus()["active"]["file"];
  EXPECT_TRUE(last_file.starts_with(cache + "/versions/")) << last_file;
  EXPECT_TRUE(PollUntil([&] {
    auto m = ModelStatus();
    return m["retired"].empty() && MappedModelFiles(agent_) == std::set<std::string>{last_file};
  })) << ModelStatus().dump();
  auto m = ModelStatus();
  EXPECT_EQ(m["swaps"], kVersions + 1);
  EXPECT_EQ(m["reclaimed"], kVersions);
  EXPECT_EQ(m["rejections"], 0);
}

}  // namespace
}  // namespace modelswap::testing
