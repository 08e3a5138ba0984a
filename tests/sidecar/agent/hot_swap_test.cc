// Multi-process hot swap under load: 50 versions published while three C++ reader processes and
// one Python reader look keys up continuously. Every value must belong to the version of the
// handle it was read through, every reader must reach the last version, and the agent must
// unmap every superseded version once readers have moved on.
#include <fstream>
#include <set>

#include "tests/sidecar/agent/agent_fixture.h"

namespace modelswap::testing {
namespace {

constexpr int kVersions = 50;

// .msf files the process maps, from /proc/<pid>/maps.
std::set<std::string> MappedModelFiles(pid_t pid) {
  std::set<std::string> out;
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find('/');
    if (at != std::string::npos && line.ends_with(".msf")) out.insert(line.substr(at));
  }
  return out;
}

TEST_F(AgentFixture, HotSwapUnderLoadHasNoTornReadsAndReclaimsOldVersions) {
  Publish("v0");
  StartAgent({"--grace-period", "600000"});
  ASSERT_TRUE(WaitActive(1));
  std::string last = "v" + std::to_string(kVersions);
  std::vector<pid_t> readers;
  std::vector<std::string> progress;
  for (int i = 0; i < 3; ++i) {
    progress.push_back(dir_ / ("cpp" + std::to_string(i) + ".progress"));
    readers.push_back(
        Spawn({READER_HELPER_BIN, "follow", "--shm-dir", shm_, "--model", kModel, "--until", last,
               "--progress", progress.back(), "--deadline-ms", "120000"},
              dir_ / "readers.log"));
  }
  progress.push_back(dir_ / "py.progress");
  readers.push_back(Spawn({PYTHON_BIN, PY_READER, shm_, kModel, last, progress.back(), "120"},
                          dir_ / "readers.log", {"MODELSWAP_PYTHON_PATH=" MODELSWAP_PYTHON_PATH}));
  // Readers are reading v0 before the first swap.
  for (const auto& p : progress) {
    ASSERT_TRUE(PollUntil([&] { return ReadProgress(p).lookups > 0; })) << p;
  }
  for (int v = 1; v <= kVersions; ++v) {
    Publish("v" + std::to_string(v));
    // Each version is really swapped in, not skipped: wait for the agent before the next.
    ASSERT_TRUE(WaitActive(static_cast<uint64_t>(v) + 1));
  }
  for (size_t i = 0; i < readers.size(); ++i) {
    auto st = WaitFor(readers[i], std::chrono::seconds(120));
    ASSERT_TRUE(st.has_value()) << "reader " << i << " did not finish";
    ReaderProgress p = ReadProgress(progress[i]);
    EXPECT_TRUE(p.ok) << ReadFile(progress[i]);
    EXPECT_EQ(p.torn, 0u) << "reader " << i << " read values of another version";
    EXPECT_EQ(p.last, last) << "reader " << i;
    EXPECT_GT(p.lookups, 0u);
    EXPECT_GE(p.versions, 2u) << "reader " << i;  // v0 before the swaps, v50 at the end
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "reader " << i << " status " << *st;
  }
  // Readers are gone: every superseded version is unmapped, only the last one stays.
  std::string last_file = VersionFile(last);
  EXPECT_TRUE(PollUntil([&] {
    auto m = ModelStatus();
    return m["retired"].empty() && MappedModelFiles(agent_) == std::set<std::string>{last_file};
  })) << ModelStatus().dump();
  // Their pages were dropped from the page cache too (POSIX_FADV_DONTNEED): mincore through a
  // fresh mapping (which faults nothing in) finds none of a few old versions resident.
  for (const char* old : {"v0", "v1", "v25", "v49"}) {
    auto map = DefaultEnv()->MapReadOnly(VersionFile(old));
    ASSERT_TRUE(map.has_value());
    EXPECT_TRUE(PollUntil([&] { return DefaultEnv()->ResidentBytes((*map)->bytes()) == 0u; }))
        << old << " still has " << *DefaultEnv()->ResidentBytes((*map)->bytes()) << " bytes cached";
  }
  auto m = ModelStatus();
  EXPECT_EQ(m["swaps"], kVersions + 1);
  EXPECT_EQ(m["reclaimed"], kVersions);
  EXPECT_EQ(m["rejections"], 0);
}

}  // namespace
}  // namespace modelswap::testing
