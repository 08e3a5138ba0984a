// A model volume in a temp dir, versions written in-process, and a real agent process (the reader
// processes tests run beside it are in reader_processes.h).
#pragma once

#include <gtest/gtest.h>

#include <spdlog/spdlog.h>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/names.h"
#include "sidecar/client/model/control_block_access.h"
#include "sidecar/volume/manifest.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/process_util.h"
#include "tests/testing/write_request.h"

namespace modelswap::testing {

// "lookups torn versions reattaches last_version" written by the reader apps.
struct ReaderProgress {
  uint64_t lookups = 0, torn = 0, versions = 0, reattaches = 0;
  std::string last;
  bool ok = false;
};
inline ReaderProgress ReadProgress(const std::string& path) {
  ReaderProgress p;
  std::istringstream in(ReadFile(path));
  p.ok = static_cast<bool>(in >> p.lookups >> p.torn >> p.versions >> p.reattaches >> p.last);
  return p;
}

// .msf files the process maps, from /proc/<pid>/maps.
inline std::set<std::string> MappedModelFiles(pid_t pid) {
  std::set<std::string> out;
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find('/');
    if (at != std::string::npos && line.ends_with(".msf")) out.insert(line.substr(at));
  }
  return out;
}

class AgentFixture : public ::testing::Test {
 public:
  static constexpr const char* kModel = "ranker";

 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);  // the in-process writer's info lines are noise
    root_ = dir_ / "root";
    shm_ = dir_ / "shm";
    std::filesystem::create_directories(root_);
    log_ = dir_ / "agent.log";
  }
  void TearDown() override {
    StopAgent();
    if (HasFailure()) std::fprintf(stderr, "--- agent log ---\n%s\n", ReadFile(log_).c_str());
  }

  // Writes <root>/ranker/versions/<version>.msf (small synthetic data).
  WriteResult Write(const std::string& version, Env* env = DefaultEnv(),
                    const std::string& root = "") {
    WriteRequest req = MakeWriteRequest(root.empty() ? root_ : root, kModel, version,
                                        GenerateSource{48 << 10, 7, 48});
    auto r = WriteVersion(env, req);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(WriteResult{});
  }
  Manifest Publish(const std::string& version, Env* env = DefaultEnv(),
                   const std::string& root = "") {
    Write(version, env, root);
    auto m = PublishVersion(env, root.empty() ? root_ : root, kModel, version);
    EXPECT_TRUE(m.has_value()) << m.error().ToString();
    return m.value_or(Manifest{});
  }

  // Flags in `extra` replace the defaults of the same name (CLI11 refuses repeated options).
  void StartAgent(std::vector<std::string> extra = {}, const std::string& root = "") {
    port_ = FreePort();
    std::map<std::string, std::string> flags = {{"--root", root.empty() ? root_ : root},
                                                {"--models", kModel},
                                                {"--shm-dir", shm_},
                                                {"--listen", "127.0.0.1:" + std::to_string(port_)},
                                                {"--poll-interval", "50"},
                                                {"--heartbeat-interval", "50"},
                                                {"--reader-timeout", "3000"}};
    for (size_t i = 0; i + 1 < extra.size(); i += 2)
      flags[extra[i]] = extra[i + 1];
    std::vector<std::string> args = {MODELSWAP_SIDECAR_BIN, "--log-level", "info", "agent"};
    for (const auto& [k, v] : flags) {
      args.push_back(k);
      args.push_back(v);
    }
    agent_ = Spawn(args, log_);
    ASSERT_GT(agent_, 0);
    ASSERT_TRUE(PollUntil([&] { return HttpGet(port_, "/healthz").status == 200; }))
        << "agent did not serve /healthz";
  }
  void StopAgent() {
    if (agent_ > 0) KillAndReap(agent_, SIGKILL);
    agent_ = -1;
  }

  nlohmann::json ModelStatus() {
    auto s = AgentStatus(port_);
    if (s.is_null() || !s.contains("models")) return nullptr;
    return s["models"][kModel];
  }
  bool ActiveGeneration(uint64_t gen) {
    auto m = ModelStatus();
    return !m.is_null() && m["active"].is_object() && m["active"]["generation"] == gen;
  }
  ::testing::AssertionResult WaitActive(uint64_t gen) {
    if (PollUntil([&] { return ActiveGeneration(gen); })) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "generation " << gen << " never active; status " << ModelStatus().dump();
  }
  // WaitActive with a minute, not 20 s: assembling chunked versions takes threads of its own, and
  // a loaded test machine is slow at it.
  ::testing::AssertionResult WaitLoaded(uint64_t gen) {
    if (PollUntil([&] { return ActiveGeneration(gen); }, std::chrono::seconds(60))) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "generation " << gen << " never active; status " << ModelStatus().dump();
  }
  std::string VersionFile(const std::string& version) {
    return VersionPath(root_, kModel, version);
  }

  // Once no reader holds a retired version, the agent retires none and maps `file` alone.
  ::testing::AssertionResult WaitOnlyMapped(const std::string& file) {
    if (PollUntil([&] {
          auto m = ModelStatus();
          return m["retired"].empty() && MappedModelFiles(agent_) == std::set<std::string>{file};
        })) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << ModelStatus().dump();
  }

  TempDir dir_;
  std::string root_, shm_, log_;
  pid_t agent_ = -1;
  int port_ = 0;
};

// Writes <root>/ranker/manifest.json by hand, naming `version` (written as `w`) under
// `generation`, so a test can damage the file or repeat a generation after writing.
inline void WriteManifest(const std::string& root, const WriteResult& w, const std::string& version,
                          uint64_t generation) {
  Manifest m{AgentFixture::kModel, version,    "versions/" + version + ".msf", w.bytes,
             w.checksum,           generation, "2025-01-01T00:00:00Z"};
  ASSERT_TRUE(
      WriteFileAtomic(DefaultEnv(), ManifestPath(root, AgentFixture::kModel), EncodeManifest(m)));
}

}  // namespace modelswap::testing
