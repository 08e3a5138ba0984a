// The hot-swap torn-read test (hot_swap_test.cc) over chunked versions: versions assembled in the
// node cache are swapped in while C++ reader processes and a Python reader look keys up; every
// value must belong to the version of the handle it was read through, every reader must reach
// the last version, and the agent must end up mapping only the last assembled file.
#include <filesystem>
#include <set>

#include "tests/sidecar/agent/reader_processes.h"
#include "tests/testing/write_request.h"

namespace modelswap::testing {
namespace {

constexpr int kVersions = 20;

class ChunkedHotSwapTest : public AgentFixture {
 protected:
  Manifest PublishChunked(const std::string& version) {
    WriteRequest req = MakeWriteRequest(root_, kModel, version, GenerateSource{64 << 10, 7, 48});
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
  const Readers readers = StartReaders(dir_, shm_, 2, last);
  ASSERT_TRUE(WaitReading(readers));
  for (int v = 1; v <= kVersions; ++v) {
    PublishChunked("v" + std::to_string(v));
    ASSERT_TRUE(WaitLoaded(static_cast<uint64_t>(v) + 1));
    ASSERT_EQ(ModelStatus()["active"]["layout"], "chunked");
  }
  ASSERT_NO_FATAL_FAILURE(ExpectReadersFinished(readers, last));
  std::string last_file = ModelStatus()["active"]["file"];
  EXPECT_TRUE(last_file.starts_with(cache + "/versions/")) << last_file;
  EXPECT_TRUE(WaitOnlyMapped(last_file));
  auto m = ModelStatus();
  EXPECT_EQ(m["swaps"], kVersions + 1);
  EXPECT_EQ(m["reclaimed"], kVersions);
  EXPECT_EQ(m["rejections"], 0);
}

}  // namespace
}  // namespace modelswap::testing
