// The control block truncated under a running app (a real child process): the app is not killed
// by SIGBUS, Acquire reports the file as truncated instead of reading zeros as a record, and the
// version handle the app already holds stays readable. Without the guard on the control block's
// mapping (control_block_access.h, ControlBlockFile) the child dies at its next load of the
// record's seq (file cut to 0) or its next slot heartbeat (file cut to the header page).
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/checksum.h"
#include "sidecar/agent/control_block_writer.h"
#include "sidecar/client/model/client.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/process_util.h"

namespace modelswap::client {
namespace {

using modelswap::testing::TempDir;

// What the child reports through its exit code (anything else, or a signal, fails the test).
enum ChildExit : int {
  kChildOk = 0,
  kAttachFailed = 10,
  kFirstAcquireFailed = 11,
  kPipeFailed = 12,
  kAcquireReturnedZeros = 13,
  kErrorNotNamingTruncation = 14,
  kHeldHandleUnreadable = 15,
};

class ControlBlockTruncationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    shm_ = dir_ / "shm";
    auto w = agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {shm_, "m"});
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    writer_ = std::move(*w);
    WriteRequest req{dir_ / "root", "m", "v1", GenerateSource{1 << 16, 5, 50}, false};
    auto r = WriteVersion(DefaultEnv(), req);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    uint64_t checksum = 0;
    ASSERT_TRUE(ParseChecksum(r->checksum, &checksum));
    published_ = ctl::Record{0, 1, r->bytes, checksum, MS_CTL_STATE_ACTIVE, 0, "v1", r->path, {}};
    writer_->Publish(published_);
  }

  // Forks an app that attaches and acquires v1, waits for the parent to cut the control block to
  // `size` bytes, then heartbeats, acquires again and reads its held handle. `must_fail`: the
  // second Acquire must fail naming the truncation (the record's page is gone); otherwise it may
  // also return the held version (the record's page survived: its seq did not change). Returns
  // the child's wait status.
  int RunApp(uint64_t size, bool must_fail) {
    int ready[2], go[2];
    if (::pipe(ready) != 0 || ::pipe(go) != 0) return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      ::_exit(App(ready[1], go[0], must_fail));
    }
    ::close(ready[1]);
    ::close(go[0]);
    char c = 0;
    bool attached = ::read(ready[0], &c, 1) == 1;
    if (attached) std::filesystem::resize_file(shm_ + "/m.ctl", size);
    (void)!::write(go[1], "g", 1);
    ::close(go[1]);
    ::close(ready[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  }

  int App(int ready, int go, bool must_fail) {
    Options o;
    o.shm_dir = shm_;
    o.heartbeat_thread = false;
    auto c = ModelClient::Attach("m", o);
    if (!c) return kAttachFailed;
    auto held = (*c)->Acquire();
    if (!held) return kFirstAcquireFailed;
    char b = 0;
    if (::write(ready, "r", 1) != 1 || ::read(go, &b, 1) != 1) return kPipeFailed;
    (*c)->Heartbeat();  // stores into the client's slot: the page may be gone
    auto again = (*c)->Acquire();
    if (again && must_fail) return kAcquireReturnedZeros;
    if (!again && again.error().message().find("truncated") == std::string::npos) {
      std::fprintf(stderr, "child: %s\n", again.error().ToString().c_str());
      return kErrorNotNamingTruncation;
    }
    auto v = held->Lookup("0");
    if (!v || !v->has_value()) return kHeldHandleUnreadable;
    return kChildOk;
  }

  TempDir dir_;
  std::string shm_;
  std::unique_ptr<agent::ControlBlockWriter> writer_;
  ctl::Record published_;
};

// The agent recreates the control block after the cut (a fresh file renamed over it, as
// ControlBlockWriter::OpenOrCreate does for an invalid one): the app's next heartbeat re-attaches
// and Acquire hands out the version again.
TEST_F(ControlBlockTruncationTest, AppReattachesWhenTheAgentRecreatesTheFile) {
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    ::close(go[1]);
    Options o;
    o.shm_dir = shm_;
    o.heartbeat_thread = false;
    auto c = ModelClient::Attach("m", o);
    if (!c || !(*c)->Acquire()) ::_exit(kAttachFailed);
    char b = 0;
    if (::write(ready[1], "r", 1) != 1 || ::read(go[0], &b, 1) != 1) ::_exit(kPipeFailed);
    if ((*c)->Acquire()) ::_exit(kAcquireReturnedZeros);  // cut: must fail
    if (::write(ready[1], "r", 1) != 1 || ::read(go[0], &b, 1) != 1) ::_exit(kPipeFailed);
    (*c)->Heartbeat();  // sees the new file and re-attaches
    auto h = (*c)->Acquire();
    if (!h) {
      std::fprintf(stderr, "child: %s\n", h.error().ToString().c_str());
      ::_exit(kFirstAcquireFailed);
    }
    auto v = h->Lookup("0");
    ::_exit(v && v->has_value() && (*c)->reattach_count() == 1 ? kChildOk : kHeldHandleUnreadable);
  }
  ::close(ready[1]);
  ::close(go[0]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  std::filesystem::resize_file(shm_ + "/m.ctl", 0);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  writer_.reset();  // the old agent goes (its flock with it), a new one recreates the file
  auto w = agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {shm_, "m"});
  ASSERT_TRUE(w.has_value()) << w.error().ToString();
  writer_ = std::move(*w);
  writer_->Publish(published_);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_FALSE(WIFSIGNALED(status)) << "app killed by signal " << WTERMSIG(status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kChildOk);
}

TEST_F(ControlBlockTruncationTest, CutToZeroIsReportedAndTheAppKeepsItsHandle) {
  int status = RunApp(0, /*must_fail=*/true);
  ASSERT_FALSE(WIFSIGNALED(status)) << "app killed by signal " << WTERMSIG(status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kChildOk);
}

TEST_F(ControlBlockTruncationTest, CutInsideTheRecordPageIsReportedWithoutAFault) {
  // No page is lost, so nothing faults: the tail of the record's page reads zeros. The file size
  // (Intact's fstat) is what tells a zeroed record from a real one.
  int status = RunApp(100, /*must_fail=*/true);
  ASSERT_FALSE(WIFSIGNALED(status)) << "app killed by signal " << WTERMSIG(status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kChildOk);
}

TEST_F(ControlBlockTruncationTest, SlotPagesCutUnderAHeartbeatDoNotKillTheApp) {
  int status = RunApp(MS_CTL_SLOTS_OFFSET, /*must_fail=*/false);
  ASSERT_FALSE(WIFSIGNALED(status)) << "app killed by signal " << WTERMSIG(status);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kChildOk);
}

}  // namespace
}  // namespace modelswap::client
