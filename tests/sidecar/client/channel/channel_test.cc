// In-process tests of the channel protocol: ordering, loss accounting, the mailbox, writer
// restarts and crash recovery. Multi-process behaviour is in channel_process_test.cc; error
// paths are in channel_errors_test.cc.
#include <algorithm>
#include <cstring>
#include <vector>

#include "tests/sidecar/client/channel/channel_fixture.h"

namespace modelswap::channel_test {
namespace {

TEST_F(ChannelTest, ReadNextReturnsMessagesInOrder) {
  ChannelWriter w = OpenWriter("orders", 8, 64);
  ChannelReader r = OpenReader("orders", 64);
  PublishN(w, 5);
  std::vector<std::byte> buf(64);
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ReadResult res = r.ReadNext(buf);
    ASSERT_EQ(res.status, ReadStatus::kMessage);
    EXPECT_EQ(res.seq, seq);
    EXPECT_EQ(res.missed, 0u);
    EXPECT_EQ(res.length, 64u);
    EXPECT_TRUE(CheckPayload(seq, buf));
  }
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kEmpty);
}

TEST_F(ChannelTest, ReadNextIsEmptyBeforeFirstPublish) {
  ChannelWriter w = OpenWriter("fresh", 4, 16);
  ChannelReader r = OpenReader("fresh", 16);
  std::vector<std::byte> buf(16);
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kEmpty);
  EXPECT_EQ(r.ReadLatest(buf).status, ReadStatus::kEmpty);
  EXPECT_EQ(r.published_seq(), 0u);
}

TEST_F(ChannelTest, NextPublishedReaderSkipsEarlierMessages) {
  ChannelWriter w = OpenWriter("late", 8, 16);
  PublishN(w, 3);
  ChannelReader r = OpenReader("late", 16);
  std::vector<std::byte> buf(16);
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kEmpty);
  PublishN(w, 1);
  ReadResult res = r.ReadNext(buf);
  EXPECT_EQ(res.seq, 4u);
  EXPECT_EQ(res.missed, 0u);
}

TEST_F(ChannelTest, OldestAvailableReaderGetsWholeRing) {
  ChannelWriter w = OpenWriter("oldest", 4, 16);
  PublishN(w, 10);
  ChannelReader r = OpenReader("oldest", 16, StartAt::kOldestAvailable);
  std::vector<std::byte> buf(16);
  for (uint64_t seq = 7; seq <= 10; ++seq) {
    ReadResult res = r.ReadNext(buf);
    ASSERT_EQ(res.status, ReadStatus::kMessage);
    EXPECT_EQ(res.seq, seq);
    EXPECT_TRUE(CheckPayload(seq, buf));
  }
  EXPECT_EQ(r.total_missed(), 0u);
}

TEST_F(ChannelTest, LappedReaderCountsExactlyWhatItMissed) {
  ChannelWriter w = OpenWriter("lapped", 4, 32);
  ChannelReader r = OpenReader("lapped", 32);
  PublishN(w, 10);  // the ring of 4 keeps 7..10; 1..6 are gone
  std::vector<std::byte> buf(32);
  ReadResult res = r.ReadNext(buf);
  ASSERT_EQ(res.status, ReadStatus::kMessage);
  EXPECT_EQ(res.seq, 7u);
  EXPECT_EQ(res.missed, 6u);
  EXPECT_TRUE(CheckPayload(7, buf));
  for (uint64_t seq = 8; seq <= 10; ++seq) {
    res = r.ReadNext(buf);
    EXPECT_EQ(res.seq, seq);
    EXPECT_EQ(res.missed, 0u);
  }
  EXPECT_EQ(r.total_missed(), 6u);
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kEmpty);
}

TEST_F(ChannelTest, ReadLatestReturnsNewestAndMovesCursorPastIt) {
  ChannelWriter w = OpenWriter("mailbox", 8, 24);
  ChannelReader r = OpenReader("mailbox", 24);
  PublishN(w, 5);
  std::vector<std::byte> buf(24);
  ReadResult res = r.ReadLatest(buf);
  ASSERT_EQ(res.status, ReadStatus::kMessage);
  EXPECT_EQ(res.seq, 5u);
  EXPECT_EQ(res.missed, 4u);  // 1..4 jumped over
  EXPECT_TRUE(CheckPayload(5, std::span(buf).first(res.length)));
  res = r.ReadLatest(buf);  // a mailbox: the value stays readable
  EXPECT_EQ(res.seq, 5u);
  EXPECT_EQ(res.missed, 0u);
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kEmpty);
  PublishN(w, 1);
  EXPECT_EQ(r.ReadNext(buf).seq, 6u);
}

TEST_F(ChannelTest, SingleSlotChannelIsAMailbox) {
  ChannelWriter w = OpenWriter("one", 1, 8);
  ChannelReader r = OpenReader("one", 8);
  PublishN(w, 3);
  std::vector<std::byte> buf(8);
  ReadResult res = r.ReadNext(buf);
  EXPECT_EQ(res.seq, 3u);
  EXPECT_EQ(res.missed, 2u);
}

TEST_F(ChannelTest, ShortMessagesKeepTheirLength) {
  ChannelWriter w = OpenWriter("short", 4, 100);
  ChannelReader r = OpenReader("short", 100);
  const char text[] = "hello";
  ASSERT_EQ(w.Publish(std::as_bytes(std::span(text, 5))), 1u);
  std::vector<std::byte> buf(100);
  ReadResult res = r.ReadNext(buf);
  ASSERT_EQ(res.length, 5u);
  EXPECT_EQ(std::memcmp(buf.data(), "hello", 5), 0);
}

// Large messages take the vector copy on x86-64 (an unaligned head and tail around aligned
// 32/64-byte moves); every length, and every misalignment of the caller's buffers, must come
// back byte for byte, with nothing written to the output past the message's length.
TEST_F(ChannelTest, EveryLengthAndBufferOffsetRoundTripsExactly) {
  constexpr uint32_t kBytes = 1100;
  ChannelWriter w = OpenWriter("lengths", 4, kBytes);
  ChannelReader r = OpenReader("lengths", kBytes);
  std::vector<std::byte> src(kBytes + 64), out(kBytes + 64 + 16);
  for (uint32_t len = 200; len <= kBytes; ++len) {
    const size_t shift = len % 61;  // source and destination misaligned differently
    const std::span<std::byte> msg(src.data() + shift % 8, len);
    FillPayload(w.last_published() + 1, msg);
    ASSERT_NE(w.Publish(msg), 0u);
    std::fill(out.begin(), out.end(), std::byte{0xA5});
    const std::span<std::byte> into(out.data() + shift, kBytes);
    const ReadResult res = r.ReadNext(into);
    ASSERT_EQ(res.status, ReadStatus::kMessage) << "len " << len;
    ASSERT_EQ(res.length, len);
    ASSERT_TRUE(CheckPayload(res.seq, into.first(len))) << "len " << len;
    for (size_t i = shift + len; i < out.size(); ++i) {
      ASSERT_EQ(out[i], std::byte{0xA5}) << "len " << len << " wrote past the message at " << i;
    }
  }
}

TEST_F(ChannelTest, PublishRejectsMessageLongerThanChannel) {
  ChannelWriter w = OpenWriter("long", 4, 16);
  std::vector<std::byte> msg(17);
  EXPECT_EQ(w.Publish(msg), 0u);
  EXPECT_EQ(w.last_published(), 0u);
}

TEST_F(ChannelTest, ReadRejectsBufferSmallerThanMessageSize) {
  ChannelWriter w = OpenWriter("small", 4, 64);
  ChannelReader r = OpenReader("small", 64);
  PublishN(w, 1);
  std::vector<std::byte> buf(63);
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kBufferTooSmall);
  EXPECT_EQ(r.ReadLatest(buf).status, ReadStatus::kBufferTooSmall);
  EXPECT_EQ(r.next_seq(), 1u);  // nothing consumed
}

TEST_F(ChannelTest, SequenceContinuesAcrossWriterRestart) {
  ChannelReader* reader = nullptr;
  {
    ChannelWriter w = OpenWriter("restart", 8, 16);
    PublishN(w, 3);
  }
  ChannelReader r = OpenReader("restart", 16, StartAt::kOldestAvailable);
  reader = &r;
  EXPECT_EQ(reader->writer_epoch(), 1u);
  ChannelWriter w2 = OpenWriter("restart", 8, 16);
  EXPECT_EQ(w2.last_published(), 3u);
  EXPECT_EQ(reader->writer_epoch(), 2u);
  PublishN(w2, 1);
  std::vector<std::byte> buf(16);
  for (uint64_t seq = 1; seq <= 4; ++seq)
    EXPECT_EQ(r.ReadNext(buf).seq, seq);
  EXPECT_EQ(r.total_missed(), 0u);
}

TEST_F(ChannelTest, SecondLiveWriterIsRefused) {
  ChannelWriter w = OpenWriter("single", 4, 16);
  auto second = ChannelWriter::Open(dir_, "single", {.slot_count = 4, .message_bytes = 16});
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("already has a live writer"), std::string::npos);
}

TEST_F(ChannelTest, WriterCanAttachOnceThePreviousOneIsGone) {
  { ChannelWriter w = OpenWriter("handover", 4, 16); }
  auto again = ChannelWriter::Open(dir_, "handover", {.slot_count = 4, .message_bytes = 16});
  EXPECT_TRUE(again.has_value()) << again.error().ToString();
}

// A writer that died after "version = 2s - 1" and half its payload.
TEST_F(ChannelTest, AbandonedSlotIsNeverReturnedAndNextWriterRepairsIt) {
  {
    ChannelWriter w = OpenWriter("crash", 4, 64);
    PublishN(w, 3);
  }
  ChannelReader r = OpenReader("crash", 64);  // cursor at 4
  PokeValue<uint64_t>("crash", SlotOffset(4, 4, 64), 2 * 4 - 1);
  std::vector<std::byte> junk(32, std::byte{0x5A});
  Poke("crash", SlotOffset(4, 4, 64) + MS_CHANNEL_SLOT_HEADER_BYTES, junk.data(), junk.size());
  std::vector<std::byte> buf(64);
  EXPECT_EQ(r.ReadNext(buf).status, ReadStatus::kEmpty);
  ReadResult latest = r.ReadLatest(buf);
  EXPECT_EQ(latest.seq, 3u);
  EXPECT_TRUE(CheckPayload(3, buf));

  ChannelWriter w2 = OpenWriter("crash", 4, 64);
  EXPECT_EQ(w2.abandoned_slots(), 1u);
  EXPECT_EQ(w2.last_published(), 3u);
  PublishN(w2, 1);  // reuses id 4, rewriting the abandoned slot
  ReadResult res = r.ReadNext(buf);
  ASSERT_EQ(res.status, ReadStatus::kMessage);
  EXPECT_EQ(res.seq, 4u);
  EXPECT_EQ(res.missed, 0u);
  EXPECT_TRUE(CheckPayload(4, buf));
}

// A writer that died after completing message 4 but before storing published_seq = 4.
TEST_F(ChannelTest, CompletedSlotBeyondPublishedSeqIsKept) {
  {
    ChannelWriter w = OpenWriter("lag", 8, 16);
    PublishN(w, 4);
  }
  PokeValue<uint64_t>("lag", offsetof(ms_channel_header, published_seq), 3);
  ChannelWriter w2 = OpenWriter("lag", 8, 16);
  EXPECT_EQ(w2.last_published(), 4u);
  EXPECT_EQ(w2.abandoned_slots(), 0u);
  PublishN(w2, 1);
  EXPECT_EQ(w2.last_published(), 5u);
}

TEST_F(ChannelTest, ReplacedNoticesRemovedFile) {
  ChannelWriter w = OpenWriter("gone", 4, 16);
  ChannelReader r = OpenReader("gone", 16);
  EXPECT_FALSE(r.Replaced().value());
  std::filesystem::remove(Path("gone"));
  EXPECT_TRUE(r.Replaced().value());
}

TEST_F(ChannelTest, ReaderAcceptsAnyMessageSizeWhenAskedForZero) {
  ChannelWriter w = OpenWriter("any", 4, 48);
  auto r = ChannelReader::Open(dir_, "any", 0);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->message_bytes(), 48u);
  EXPECT_EQ(r->slot_count(), 4u);
}

// Review findings: ReadLatest on a one-slot channel whose slot is being rewritten (by a writer
// that may have died there) returned only when the write finished, i.e. never after a SIGKILL;
// a damaged version word could move the cursor backwards and wrap the missed count.
TEST_F(ChannelTest, ReadLatestOnAOneSlotChannelMidRewriteIsEmpty) {
  ChannelWriter w = OpenWriter("one", 1, 16);
  PublishN(w, 1);
  ChannelReader r = OpenReader("one", 16);
  PokeValue<uint64_t>("one", SlotOffset(2, 1, 16), 2 * 2 - 1);  // message 2 half-written
  std::vector<std::byte> buf(16);
  EXPECT_EQ(r.ReadLatest(buf).status, ReadStatus::kEmpty);
}

// Found by tests/fuzz/channel_fuzz: ReadLatest looped forever when the newest slot's version
// disagreed with published_seq and nothing ever changed it: a slot older than published_seq
// (damage), or a slot holding a newer message whose publish never completed (a writer stopped
// between its slot store and its published_seq store, or damage). Every call must return.
TEST_F(ChannelTest, ReadLatestReturnsWhenTheNewestSlotDisagreesWithPublishedSeq) {
  ChannelWriter w = OpenWriter("stuck", 4, 16);
  PublishN(w, 3);
  ChannelReader r = OpenReader("stuck", 16);
  std::vector<std::byte> buf(16);
  // Slot of message 3 rewound to message... nothing (version 0 < 2 * 3).
  PokeValue<uint64_t>("stuck", SlotOffset(3, 4, 16), 0);
  EXPECT_EQ(r.ReadLatest(buf).status, ReadStatus::kEmpty);
  // Slot of message 3 now claims message 7 (complete), while published_seq stays at 3.
  PokeValue<uint64_t>("stuck", SlotOffset(3, 4, 16), 2 * 7);
  EXPECT_EQ(r.ReadLatest(buf).status, ReadStatus::kEmpty);
  // Repaired: the newest message reads again.
  PokeValue<uint64_t>("stuck", SlotOffset(3, 4, 16), 2 * 3);
  ReadResult res = r.ReadLatest(buf);
  ASSERT_EQ(res.status, ReadStatus::kMessage);
  EXPECT_EQ(res.seq, 3u);
}

TEST_F(ChannelTest, DamagedVersionNeverMovesTheCursorBack) {
  ChannelWriter w = OpenWriter("damaged", 4, 16);
  ChannelReader r = OpenReader("damaged", 16);
  PublishN(w, 2);
  std::vector<std::byte> buf(16);
  ASSERT_EQ(r.ReadNext(buf).seq, 1u);
  PokeValue<uint64_t>("damaged", SlotOffset(2, 4, 16), ~uint64_t{0});
  ReadResult res = r.ReadNext(buf);
  EXPECT_EQ(res.status, ReadStatus::kEmpty);
  EXPECT_EQ(r.total_missed(), 0u);
  PokeValue<uint64_t>("damaged", SlotOffset(2, 4, 16), 2 * 2);  // repaired
  res = r.ReadNext(buf);
  ASSERT_EQ(res.status, ReadStatus::kMessage);
  EXPECT_EQ(res.seq, 2u);
  EXPECT_EQ(res.missed, 0u);
}

// Move-assigning over a live reader or writer (re-opening to follow a replaced file) used to
// destroy the target's path string and then assign to it: a double free (caught under ASan).
TEST_F(ChannelTest, MoveAssignOverALiveReaderAndWriter) {
  ChannelWriter w = OpenWriter("first-channel-with-a-long-name", 4, 16);
  ChannelWriter w2 = OpenWriter("second-channel-with-a-long-name", 4, 16);
  ChannelReader r = OpenReader("first-channel-with-a-long-name", 16);
  ChannelReader r2 = OpenReader("second-channel-with-a-long-name", 16);
  r = std::move(r2);
  w = std::move(w2);  // drops the first channel's writer lock
  PublishN(w, 3);
  std::vector<std::byte> buf(16);
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ReadResult res = r.ReadNext(buf);
    ASSERT_EQ(res.status, ReadStatus::kMessage);
    EXPECT_EQ(res.seq, seq);
  }
  EXPECT_TRUE(ChannelWriter::Open(dir_, "first-channel-with-a-long-name",
                                  {.slot_count = 4, .message_bytes = 16})
                  .has_value());
}

}  // namespace
}  // namespace modelswap::channel_test
