// Multi-process tests of the channel's two bounds on hostile peers: a reader facing a writer
// that publishes back to back always returns (ReadLatest and ReadNext give up after
// kChannelReadTries copies, channel.h), and a file truncated by another process is reported
// (kFileDamaged, Publish 0) instead of killing the reader or writer with SIGBUS.
//
// Every loop is bounded by a count; the writer peer arms alarm(120). No timed assertion: the
// livelock check counts copies per call (torn_retries), which is what the bound limits.
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "tests/sidecar/client/channel/channel_fixture.h"
#include "tests/sidecar/client/channel/subprocess.h"

namespace modelswap::channel_test {
namespace {

class ChannelHardeningTest : public ChannelTest {
 protected:
  std::vector<std::string> Peer(const std::string& mode, const std::string& name,
                                std::vector<std::string> extra) {
    std::vector<std::string> argv = {CHANNEL_PEER_PATH, mode, "--shm", dir_, "--name", name};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  // Attaches once the flood peer is flooding: past its first publishes through ChannelWriter
  // (bounded polling).
  ChannelReader AttachWhenFlooding(const std::string& name, uint32_t bytes) {
    for (int i = 0; i < 20'000; ++i) {
      auto r = ChannelReader::Open(dir_, name, bytes);
      if (r && r->published_seq() > 1000) return std::move(*r);
      ::usleep(1000);
    }
    ADD_FAILURE() << "writer peer never published on " << name;
    return OpenReader(name, bytes);
  }
};

// A two-slot ring of 64 KiB messages and the flood peer (channel_peer.cc), which publishes far
// faster than a reader copies 64 KiB: the slot a reader copies is overwritten during every copy,
// and published_seq moves on every try, so before the total bound a reader retried for as long
// as the writer kept publishing.
constexpr uint32_t kBusyBytes = 64 << 10;

TEST_F(ChannelHardeningTest, ReadLatestReturnsWithinBoundAgainstBackToBackWriter) {
  Child w =
      Child::Spawn(Peer("flood", "busy", {"--bytes", std::to_string(kBusyBytes), "--slots", "2"}));
  ASSERT_GT(w.pid(), 0);
  ChannelReader r = AttachWhenFlooding("busy", kBusyBytes);
  std::vector<std::byte> buf(kBusyBytes);
  const uint64_t p_before = r.published_seq();
  int messages = 0, busy = 0, empty = 0;
  for (int call = 0; call < 100'000 && busy < 5; ++call) {
    const uint64_t tries_before = r.torn_retries() + r.lapped_retries();
    const ReadResult res = r.ReadLatest(buf);
    // Each try that fails is one torn copy or a lapped slot (which copies nothing): a call
    // never makes more than the bound's worth of them.
    ASSERT_LE(r.torn_retries() + r.lapped_retries() - tries_before, kChannelReadTries)
        << "call " << call;
    switch (res.status) {
      case ReadStatus::kMessage:
        ++messages;
        ASSERT_EQ(res.length, kBusyBytes);
        ASSERT_TRUE(CheckPayload(0, std::span(buf.data(), res.length))) << res.seq;
        break;
      case ReadStatus::kBusy:
        ++busy;
        break;
      case ReadStatus::kEmpty:
        ++empty;
        break;  // the writer was off the CPU for every try
      default:
        FAIL() << "status " << static_cast<int>(res.status);
    }
  }
  EXPECT_GT(r.published_seq(), p_before) << "the writer peer was not publishing";
  RecordProperty("messages", messages);
  RecordProperty("busy", busy);
  RecordProperty("empty", empty);
  RecordProperty("published", std::to_string(r.published_seq() - p_before));
  RecordProperty("torn", std::to_string(r.torn_retries()));
  RecordProperty("lapped", std::to_string(r.lapped_retries()));
  w.Kill(SIGKILL);
  w.Wait();
}

TEST_F(ChannelHardeningTest, ReadNextReturnsWithinBoundAgainstBackToBackWriter) {
  Child w = Child::Spawn(
      Peer("flood", "busynext", {"--bytes", std::to_string(kBusyBytes), "--slots", "2"}));
  ASSERT_GT(w.pid(), 0);
  ChannelReader r = AttachWhenFlooding("busynext", kBusyBytes);
  std::vector<std::byte> buf(kBusyBytes);
  uint64_t prev = r.next_seq() - 1;
  const uint64_t p_before = r.published_seq();
  int messages = 0, busy = 0;
  for (int call = 0; call < 100'000 && busy < 5; ++call) {
    const uint64_t tries_before = r.torn_retries() + r.lapped_retries();
    const ReadResult res = r.ReadNext(buf);
    ASSERT_LE(r.torn_retries() + r.lapped_retries() - tries_before, kChannelReadTries)
        << "call " << call;
    if (res.status != ReadStatus::kBusy) ::sched_yield();  // let the flood peer run
    if (res.status == ReadStatus::kMessage) {
      ++messages;
      ASSERT_TRUE(CheckPayload(0, std::span(buf.data(), res.length))) << res.seq;
      // Giving up (kBusy) must not lose track: losses are still counted exactly.
      ASSERT_EQ(res.seq, prev + 1 + res.missed);
      prev = res.seq;
    } else {
      busy += res.status == ReadStatus::kBusy;
      ASSERT_TRUE(res.status == ReadStatus::kBusy || res.status == ReadStatus::kEmpty)
          << static_cast<int>(res.status);
    }
  }
  RecordProperty("messages", messages);
  RecordProperty("busy", busy);
  RecordProperty("published", std::to_string(r.published_seq() - p_before));
  RecordProperty("lapped", std::to_string(r.lapped_retries()));
  w.Kill(SIGKILL);
  w.Wait();
}

// Another process of the pod truncates the channel file: the reader process gets kFileDamaged
// (exit 4 with a JSON line), not SIGBUS; this process's reader and writer survive too.
TEST_F(ChannelHardeningTest, TruncatedFileIsReportedNotFatal) {
  ChannelWriter w = OpenWriter("trunc", 4, 4096);
  PublishN(w, 3);
  Child reader = Child::Spawn(Peer("read", "trunc", {"--bytes", "4096", "--start", "oldest"}));
  ASSERT_EQ(reader.ReadLine().rfind("ready ", 0), 0u);
  ChannelReader local = OpenReader("trunc", 4096, StartAt::kOldestAvailable);
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(local.ReadNext(buf).status, ReadStatus::kMessage);

  // The truncation, by a separate process as in a pod (coreutils truncate).
  Child cut = Child::Spawn({"/usr/bin/truncate", "-s", "0", Path("trunc")});
  ASSERT_TRUE(ExitedOk(cut.Wait()));

  const std::string line = reader.ReadLine();
  const int status = reader.Wait();
  ASSERT_TRUE(WIFEXITED(status)) << "reader died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 4) << line;
  EXPECT_NE(line.find("\"damaged\": true"), std::string::npos) << line;

  EXPECT_EQ(local.ReadNext(buf).status, ReadStatus::kFileDamaged);
  EXPECT_EQ(local.ReadLatest(buf).status, ReadStatus::kFileDamaged);
  EXPECT_TRUE(local.damaged());
  std::vector<std::byte> msg(4096);
  FillPayload(w.last_published() + 1, msg);
  EXPECT_EQ(w.Publish(msg), 0u);
  EXPECT_TRUE(w.damaged());
  // A new writer re-creates nothing here (the file is still linked, now too short to be a
  // channel): it reports the short file instead of mapping it.
  EXPECT_FALSE(ChannelWriter::Open(dir_, "trunc", {.slot_count = 4, .message_bytes = 4096}));
}

// Truncated while the reader is not reading: the next read faults, survives and reports.
TEST_F(ChannelHardeningTest, IdleReaderSeesTruncationOnNextRead) {
  ChannelWriter w = OpenWriter("idle", 2, 64);
  PublishN(w, 1);
  ChannelReader r = OpenReader("idle", 64, StartAt::kOldestAvailable);
  Child cut = Child::Spawn({"/usr/bin/truncate", "-s", "0", Path("idle")});
  ASSERT_TRUE(ExitedOk(cut.Wait()));
  std::vector<std::byte> buf(64);
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kFileDamaged);
  EXPECT_FALSE(w.damaged());  // it has not touched the lost pages yet
}

}  // namespace
}  // namespace modelswap::channel_test
