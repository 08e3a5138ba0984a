// One test per error path of opening a channel: bad names and options, missing files, size and
// layout mismatches, and every header check a damaged or foreign file can fail.
#include <gmock/gmock.h>
#include <sys/stat.h>

#include "tests/sidecar/client/channel/channel_fixture.h"

namespace modelswap::channel_test {
namespace {

MATCHER_P2(IsError, code, text, "") {
  if (arg.has_value()) {
    *result_listener << "succeeded";
    return false;
  }
  *result_listener << arg.error().ToString();
  return arg.error().code() == code && arg.error().message().find(text) != std::string::npos;
}

class ChannelErrorTest : public ChannelTest {
 protected:
  // A valid 4-slot, 64-byte channel with no writer attached.
  void MakeChannel(const std::string& name) { OpenWriter(name, 4, 64); }
  Result<ChannelReader> Attach(const std::string& name, uint32_t bytes = 64) {
    return ChannelReader::Open(dir_, name, bytes);
  }
};

TEST_F(ChannelErrorTest, EmptyNameIsRejected) {
  EXPECT_THAT(ChannelReader::Open(dir_, "", 0), IsError(Code::kInvalidArgument, "channel name"));
}

TEST_F(ChannelErrorTest, NameWithSlashIsRejected) {
  EXPECT_THAT(ChannelWriter::Open(dir_, "../etc", {4, 8}),
              IsError(Code::kInvalidArgument, "channel name"));
}

TEST_F(ChannelErrorTest, NameStartingWithDotIsRejected) {
  EXPECT_THAT(ChannelReader::Open(dir_, ".hidden", 0),
              IsError(Code::kInvalidArgument, "channel name"));
}

TEST_F(ChannelErrorTest, NameLongerThan63IsRejected) {
  EXPECT_THAT(ChannelReader::Open(dir_, std::string(64, 'a'), 0),
              IsError(Code::kInvalidArgument, "channel name"));
}

TEST_F(ChannelErrorTest, SlotCountNotPowerOfTwoIsRejected) {
  EXPECT_THAT(ChannelWriter::Open(dir_, "c", {.slot_count = 6, .message_bytes = 8}),
              IsError(Code::kInvalidArgument, "slot_count 6 is not a power of two"));
}

TEST_F(ChannelErrorTest, ZeroSlotsAreRejected) {
  EXPECT_THAT(ChannelWriter::Open(dir_, "c", {.slot_count = 0, .message_bytes = 8}),
              IsError(Code::kInvalidArgument, "slot_count 0"));
}

TEST_F(ChannelErrorTest, ZeroMessageBytesAreRejected) {
  EXPECT_THAT(ChannelWriter::Open(dir_, "c", {.slot_count = 4, .message_bytes = 0}),
              IsError(Code::kInvalidArgument, "message_bytes 0"));
}

TEST_F(ChannelErrorTest, HugeMessagesAreRejected) {
  EXPECT_THAT(ChannelWriter::Open(dir_, "c", {.slot_count = 4, .message_bytes = 1u << 25}),
              IsError(Code::kInvalidArgument, "message_bytes 33554432"));
}

TEST_F(ChannelErrorTest, ReaderOfMissingChannelGetsNotFound) {
  EXPECT_THAT(Attach("nobody"), IsError(Code::kNotFound, "nobody.chan"));
}

TEST_F(ChannelErrorTest, ReaderWithOtherMessageSizeIsRefused) {
  MakeChannel("sized");
  EXPECT_THAT(
      Attach("sized", 128),
      IsError(Code::kFailedPrecondition,
              "message size mismatch: channel carries 64-byte messages, caller expects 128"));
}

TEST_F(ChannelErrorTest, WriterWithOtherMessageSizeIsRefused) {
  MakeChannel("sized");
  EXPECT_THAT(ChannelWriter::Open(dir_, "sized", {.slot_count = 4, .message_bytes = 32}),
              IsError(Code::kFailedPrecondition, "message size mismatch"));
}

TEST_F(ChannelErrorTest, WriterWithOtherSlotCountIsRefused) {
  MakeChannel("slots");
  EXPECT_THAT(ChannelWriter::Open(dir_, "slots", {.slot_count = 8, .message_bytes = 64}),
              IsError(Code::kFailedPrecondition, "slot count mismatch: channel has 4 slots"));
}

TEST_F(ChannelErrorTest, ForeignFileHasBadMagic) {
  MakeChannel("foreign");
  PokeValue<uint64_t>("foreign", 0, 0x1234);
  EXPECT_THAT(Attach("foreign"), IsError(Code::kCorruption, "bad magic"));
}

TEST_F(ChannelErrorTest, NewerLayoutVersionIsRefused) {
  MakeChannel("future");
  PokeValue<uint32_t>("future", offsetof(ms_channel_header, layout_version), 2);
  EXPECT_THAT(Attach("future"),
              IsError(Code::kFailedPrecondition, "layout version 2, this library reads version 1"));
}

TEST_F(ChannelErrorTest, WrongHeaderBytesIsCorruption) {
  MakeChannel("hdr");
  PokeValue<uint32_t>("hdr", offsetof(ms_channel_header, header_bytes), 512);
  EXPECT_THAT(Attach("hdr"), IsError(Code::kCorruption, "header_bytes 512"));
}

TEST_F(ChannelErrorTest, DamagedSlotCountIsCorruption) {
  MakeChannel("slotsbad");
  PokeValue<uint32_t>("slotsbad", offsetof(ms_channel_header, slot_count), 3);
  EXPECT_THAT(Attach("slotsbad"), IsError(Code::kCorruption, "header: slot_count 3"));
}

TEST_F(ChannelErrorTest, WrongSlotStrideIsCorruption) {
  MakeChannel("stride");
  PokeValue<uint32_t>("stride", offsetof(ms_channel_header, slot_stride), 64);
  EXPECT_THAT(Attach("stride"), IsError(Code::kCorruption, "slot_stride 64 does not match"));
}

TEST_F(ChannelErrorTest, WrongFileBytesFieldIsCorruption) {
  MakeChannel("fbytes");
  PokeValue<uint64_t>("fbytes", offsetof(ms_channel_header, file_bytes), 1);
  EXPECT_THAT(Attach("fbytes"), IsError(Code::kCorruption, "header file_bytes 1"));
}

TEST_F(ChannelErrorTest, TruncatedFileIsCorruption) {
  MakeChannel("trunc");
  ASSERT_EQ(::truncate(Path("trunc").c_str(), MS_CHANNEL_HEADER_BYTES + 64), 0);
  EXPECT_THAT(Attach("trunc"), IsError(Code::kCorruption, "truncated or extended"));
}

TEST_F(ChannelErrorTest, FileShorterThanHeaderIsCorruption) {
  MakeChannel("tiny");
  ASSERT_EQ(::truncate(Path("tiny").c_str(), 10), 0);
  EXPECT_THAT(Attach("tiny"), IsError(Code::kCorruption, "smaller than the 256-byte header"));
}

TEST_F(ChannelErrorTest, DirectoryInPlaceOfFileIsRejected) {
  std::filesystem::create_directories(Path("dir"));
  EXPECT_THAT(Attach("dir"), IsError(Code::kCorruption, "not a regular file"));
}

TEST_F(ChannelErrorTest, WriterOfDamagedFileIsRefusedAndFileKept) {
  MakeChannel("keep");
  PokeValue<uint64_t>("keep", 0, 0);
  EXPECT_THAT(ChannelWriter::Open(dir_, "keep", {.slot_count = 4, .message_bytes = 64}),
              IsError(Code::kCorruption, "bad magic"));
  EXPECT_TRUE(std::filesystem::exists(Path("keep")));  // never silently recreated
}

}  // namespace
}  // namespace modelswap::channel_test
