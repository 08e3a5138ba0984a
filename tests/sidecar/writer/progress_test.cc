// Write progress: the process's ProgressBoard, and a real `modelswap-sidecar write
// --progress-addr` process serving GET /v1/progress while it writes (what the operator polls).
#include "sidecar/writer/progress.h"

#include <gtest/gtest.h>

#include "tests/sidecar/agent/process_util.h"

namespace modelswap {
namespace {

using testing::FreePort;
using testing::HttpGet;

TEST(ProgressBoardTest, UpdatesReachTheBoardAndFinishingCompletesIt) {
  ProgressBoard& board = ProgressBoard::Process();
  board.Reset();
  board.SetTotal(1000);
  Progress p(DefaultEnv(), "write", 1200, /*enabled=*/false);  // no stderr lines, board still fed
  p.Update(400);
  ProgressSnapshot s = board.Read();
  EXPECT_EQ(s.done, 400u);
  EXPECT_EQ(s.total, 1000u);
  EXPECT_FALSE(s.finished);
  p.Update(1100);  // an estimate can overshoot: clamped to the total
  EXPECT_EQ(board.Read().done, 1000u);
  p.Done(900);  // finished: done is the total whatever unit the last update counted
  s = board.Read();
  EXPECT_TRUE(s.finished);
  EXPECT_EQ(s.done, 1000u);
  board.Reset();
  board.SetDone(5);  // unknown total: done as is
  EXPECT_EQ(board.Read().done, 5u);
  EXPECT_EQ(board.Read().total, 0u);
}

// A real writer serves its progress while it writes: bytes written move forward, below the total,
// and the total is the bytes asked for. Polled as fast as the test can; a 192 MiB write takes far
// longer than one poll, so samples between start and end are seen whatever the machine's speed.
TEST(ProgressBoardTest, WriterProcessServesProgressWhileWriting) {
  testing::TempDir dir;
  const int port = FreePort();
  const uint64_t total = 192ull << 20;
  const std::string log = dir.path() + "/write.log";
  pid_t pid = testing::Spawn(
      {MODELSWAP_SIDECAR_BIN, "--log-level", "info", "write", "--root", dir.path() + "/models",
       "--model", "ranker", "--version", "v1", "--generate-bytes", std::to_string(total),
       "--value-bytes", "100", "--termination-log", dir.path() + "/termination", "--progress-addr",
       "127.0.0.1:" + std::to_string(port)},
      log);
  ASSERT_GT(pid, 0);
  std::vector<nlohmann::json> samples;
  std::optional<int> exit_status;
  const auto deadline = testing::Clock::now() + std::chrono::seconds(300);
  while (!exit_status && testing::Clock::now() < deadline) {
    testing::HttpResponse r = HttpGet(port, "/v1/progress");
    if (r.status == 200) samples.push_back(nlohmann::json::parse(r.body));
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) exit_status = st;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!exit_status) testing::KillAndReap(pid);
  ASSERT_TRUE(exit_status.has_value()) << "writer did not finish";
  ASSERT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0) << testing::ReadFile(log);
  ASSERT_FALSE(samples.empty()) << testing::ReadFile(log);
  int between = 0;
  uint64_t last = 0;
  for (const auto& s : samples) {
    EXPECT_EQ(s["model"], "ranker");
    EXPECT_EQ(s["version"], "v1");
    EXPECT_EQ(s["bytes_total"].get<uint64_t>(), total);
    uint64_t done = s["bytes_written"].get<uint64_t>();
    EXPECT_GE(done, last) << "progress went backwards";
    EXPECT_LE(done, total);
    last = done;
    if (done > 0 && done < total && !s["finished"].get<bool>()) ++between;
  }
  EXPECT_GT(between, 0) << samples.size() << " samples, none mid-write";
}

// An address that cannot be bound costs only the progress: the write itself succeeds.
TEST(ProgressBoardTest, UnbindableProgressAddressDoesNotFailTheWrite) {
  testing::TempDir dir;
  const std::string log = dir.path() + "/write.log";
  pid_t pid = testing::Spawn({MODELSWAP_SIDECAR_BIN, "write", "--root", dir.path() + "/models",
                              "--model", "ranker", "--version", "v1", "--generate-bytes", "4096",
                              "--termination-log", dir.path() + "/termination", "--progress-addr",
                              "192.0.2.1:1"},  // TEST-NET-1: not an address of this host
                             log);
  ASSERT_GT(pid, 0);
  std::optional<int> st = testing::WaitFor(pid, std::chrono::seconds(60));
  if (!st) testing::KillAndReap(pid);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << testing::ReadFile(log);
  EXPECT_NE(testing::ReadFile(dir.path() + "/termination").find("\"checksum\""), std::string::npos);
}

}  // namespace
}  // namespace modelswap
