// The C ABI (modelswap_channel.h) over the C++ channel API: handles are heap objects owning a
// ChannelWriter / ChannelReader; errors become negative codes plus a thread-local message. Every
// entry point that can allocate catches everything, so no exception crosses into C.
#include "sidecar/client/channel/modelswap_channel.h"

#include <exception>
#include <new>
#include <optional>
#include <string>

#include "common/names.h"
#include "sidecar/client/c_abi.h"
#include "sidecar/client/channel/channel.h"

struct ms_channel_writer {
  modelswap::ChannelWriter writer;
};
struct ms_channel_reader {
  modelswap::ChannelReader reader;
};

namespace {

using modelswap::Code;

ms_channel_status Report(const modelswap::Error& error) {
  return modelswap::c_abi::Report<ms_channel_status>(error);
}

ms_channel_status Report(Code code, const char* message) {
  return modelswap::c_abi::Report<ms_channel_status>(code, message);
}

std::string ShmDir(const char* shm_dir) {
  return modelswap::ResolveShmDir(shm_dir != nullptr ? shm_dir : "");
}

ms_channel_status FromRead(const modelswap::ReadResult& r, ms_channel_read_info* info) {
  if (r.status == modelswap::ReadStatus::kBufferTooSmall) return MS_CHANNEL_BUFFER_TOO_SMALL;
  if (r.status == modelswap::ReadStatus::kEmpty) return MS_CHANNEL_EMPTY;
  if (r.status == modelswap::ReadStatus::kBusy) return MS_CHANNEL_BUSY;
  if (r.status == modelswap::ReadStatus::kFileDamaged) {
    return Report(Code::kIOError,
                  "channel file truncated (or unreadable) under the mapping: reopen");
  }
  if (info != nullptr) {
    *info = {.seq = r.seq, .missed = r.missed, .length = r.length, .reserved = 0};
  }
  return MS_CHANNEL_OK;
}

}  // namespace

extern "C" {

ms_channel_status ms_channel_writer_open(const char* shm_dir, const char* name, uint32_t slot_count,
                                         uint32_t message_bytes, ms_channel_writer** out) {
  if (name == nullptr || out == nullptr) return Report(Code::kInvalidArgument, "null argument");
  return modelswap::c_abi::Guard<ms_channel_status>([&] {
    auto writer = modelswap::ChannelWriter::Open(
        ShmDir(shm_dir), name, {.slot_count = slot_count, .message_bytes = message_bytes});
    if (!writer) return Report(writer.error());
    *out = new ms_channel_writer{std::move(*writer)};
    return MS_CHANNEL_OK;
  });
}

ms_channel_status ms_channel_publish(ms_channel_writer* writer, const void* data, uint32_t len,
                                     uint64_t* seq_out) {
  if (writer == nullptr || (data == nullptr && len != 0)) {
    return Report(Code::kInvalidArgument, "null argument");
  }
  const uint64_t seq =
      writer->writer.Publish({static_cast<const std::byte*>(data), static_cast<size_t>(len)});
  if (seq == 0 && writer->writer.damaged()) {
    return Report(Code::kIOError, "channel file truncated (or unreadable) under the mapping");
  }
  if (seq == 0)
    return Report(Code::kInvalidArgument, "message longer than the channel's message_bytes");
  if (seq_out != nullptr) *seq_out = seq;
  return MS_CHANNEL_OK;
}

uint64_t ms_channel_writer_last_published(const ms_channel_writer* writer) {
  return writer == nullptr ? 0 : writer->writer.last_published();
}

void ms_channel_writer_close(ms_channel_writer* writer) {
  delete writer;
}

ms_channel_status ms_channel_reader_open(const char* shm_dir, const char* name,
                                         uint32_t expected_message_bytes, ms_channel_start start,
                                         ms_channel_reader** out) {
  if (name == nullptr || out == nullptr) return Report(Code::kInvalidArgument, "null argument");
  if (start != MS_CHANNEL_START_NEXT_PUBLISHED && start != MS_CHANNEL_START_OLDEST_AVAILABLE) {
    return Report(Code::kInvalidArgument, "unknown ms_channel_start value");
  }
  return modelswap::c_abi::Guard<ms_channel_status>([&] {
    auto reader = modelswap::ChannelReader::Open(ShmDir(shm_dir), name, expected_message_bytes,
                                                 start == MS_CHANNEL_START_OLDEST_AVAILABLE
                                                     ? modelswap::StartAt::kOldestAvailable
                                                     : modelswap::StartAt::kNextPublished);
    if (!reader) return Report(reader.error());
    *out = new ms_channel_reader{std::move(*reader)};
    return MS_CHANNEL_OK;
  });
}

ms_channel_status ms_channel_read_next(ms_channel_reader* reader, void* buf, uint32_t buf_len,
                                       ms_channel_read_info* info) {
  if (reader == nullptr || buf == nullptr) return Report(Code::kInvalidArgument, "null argument");
  return FromRead(reader->reader.ReadNext({static_cast<std::byte*>(buf), buf_len}), info);
}

ms_channel_status ms_channel_read_latest(ms_channel_reader* reader, void* buf, uint32_t buf_len,
                                         ms_channel_read_info* info) {
  if (reader == nullptr || buf == nullptr) return Report(Code::kInvalidArgument, "null argument");
  return FromRead(reader->reader.ReadLatest({static_cast<std::byte*>(buf), buf_len}), info);
}

uint32_t ms_channel_reader_message_bytes(const ms_channel_reader* reader) {
  return reader == nullptr ? 0 : reader->reader.message_bytes();
}

uint64_t ms_channel_reader_total_missed(const ms_channel_reader* reader) {
  return reader == nullptr ? 0 : reader->reader.total_missed();
}

void ms_channel_reader_close(ms_channel_reader* reader) {
  delete reader;
}

const char* ms_channel_last_error(void) {
  return modelswap::c_abi::LastError().c_str();
}

}  // extern "C"
