// The reader processes the agent's process tests run beside the agent: the hot-swap torn-read
// tests' followers (hot_swap_test.cc, chunked_hot_swap_test.cc, chain_test.cc: C++ readers
// (reader_helper) and one Python reader (py_reader.py) follow the model while versions are swapped
// in, and must end having read nothing torn), and a reader holding one handle forever. Needs
// READER_HELPER_BIN, PYTHON_BIN, PY_READER and MODELSWAP_PYTHON_PATH (the agent_process_test target
// defines them).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "tests/sidecar/agent/agent_fixture.h"

namespace modelswap::testing {

// Reader processes following the model until they read `last`: `cpp` of reader_helper and one
// Python reader (py_reader.py), each writing ReaderProgress to its file. With `chain` (a
// chain_spec.h spec and its key count) they check every value against the spec's chain
// (reader_helper follow-chain) instead of the synthetic prefix of the handle's version.
struct Readers {
  std::vector<pid_t> pids;
  std::vector<std::string> progress;
};
struct ChainCheck {
  std::string spec;
  uint64_t keys = 0;
};
inline Readers StartReaders(const TempDir& dir, const std::string& shm, int cpp,
                            const std::string& last,
                            const std::optional<ChainCheck>& chain = std::nullopt) {
  Readers r;
  for (int i = 0; i < cpp; ++i) {
    r.progress.push_back(dir / ("cpp" + std::to_string(i) + ".progress"));
    std::vector<std::string> args = {READER_HELPER_BIN, chain ? "follow-chain" : "follow",
                                     "--shm-dir",       shm,
                                     "--model",         AgentFixture::kModel,
                                     "--until",         last,
                                     "--progress",      r.progress.back(),
                                     "--deadline-ms",   "120000"};
    if (chain) {
      args.insert(args.end(), {"--chain", chain->spec, "--keys", std::to_string(chain->keys)});
    }
    r.pids.push_back(Spawn(args, dir / "readers.log"));
  }
  r.progress.push_back(dir / "py.progress");
  std::vector<std::string> py = {PYTHON_BIN, PY_READER,         shm,  AgentFixture::kModel,
                                 last,       r.progress.back(), "120"};
  if (chain) py.insert(py.end(), {chain->spec, std::to_string(chain->keys)});
  r.pids.push_back(
      Spawn(py, dir / "readers.log", {"MODELSWAP_PYTHON_PATH=" MODELSWAP_PYTHON_PATH}));
  return r;
}
// Every reader has looked keys up (on the version serving before the swaps).
inline ::testing::AssertionResult WaitReading(const Readers& r) {
  for (const auto& p : r.progress) {
    if (!PollUntil([&] { return ReadProgress(p).lookups > 0; })) {
      return ::testing::AssertionFailure() << p << " never reported a lookup";
    }
  }
  return ::testing::AssertionSuccess();
}
// Every reader exits 0 having read nothing torn, reached `last` and seen two versions at least.
inline void ExpectReadersFinished(const Readers& r, const std::string& last) {
  for (size_t i = 0; i < r.pids.size(); ++i) {
    auto st = WaitFor(r.pids[i], std::chrono::seconds(120));
    ASSERT_TRUE(st.has_value()) << "reader " << i << " did not finish";
    ReaderProgress p = ReadProgress(r.progress[i]);
    EXPECT_TRUE(p.ok) << ReadFile(r.progress[i]);
    EXPECT_EQ(p.torn, 0u) << "reader " << i << " read a value not of its handle's version";
    EXPECT_EQ(p.last, last) << "reader " << i;
    EXPECT_GT(p.lookups, 0u);
    EXPECT_GE(p.versions, 2u) << "reader " << i;  // the first version and the last at least
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "reader " << i << " status " << *st;
  }
}

// A reader_helper `hold` process: acquires once, holds the handle until killed, and writes
// "holding <generation>" to `progress` once it holds.
inline pid_t StartHolder(const TempDir& dir, const std::string& shm, const std::string& progress) {
  return Spawn({READER_HELPER_BIN, "hold", "--shm-dir", shm, "--model", AgentFixture::kModel,
                "--progress", progress},
               dir / "reader.log");
}

}  // namespace modelswap::testing
