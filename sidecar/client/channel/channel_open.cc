// Creating, attaching to and checking channel files (the protocol itself is in channel.cc).
//
// A channel file only ever appears complete: the creator builds it unnamed (O_TMPFILE, or a
// dot-named temp file where the filesystem lacks it), fills the header, and links it into place
// with a no-replace link, so a reader or a second creator never sees a half-initialised header
// and a creator killed midway leaves nothing behind (O_TMPFILE) or only an ignored dot file.
// Writers hold an exclusive flock on the file for their lifetime; the kernel releases it when the
// process dies however it dies, so a restarted writer never finds a stale lock.
//
// Files, locks and mappings go through common/shm_file.h (POSIX directly rather than Env, for the
// reasons given there); the failures that matter here (processes dying) are tested with real
// processes.
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <bit>
#include <chrono>
#include <cstring>

#include "common/mapping_guard.h"
#include "common/names.h"
#include "common/shm_file.h"
#include "sidecar/client/channel/channel.h"

namespace modelswap {
namespace {

static_assert(std::endian::native == std::endian::little, "channel files are little-endian");

// Opens an existing channel file; the writer also takes the flock. `checked` (may be null)
// receives the header as validated: a copy taken once, because the shared header could change
// between a check and a later read of the same field (the file is group writable), and the
// immutable fields sized the mapping's bounds.
// A mapping and its registration with the SIGBUS guard (channel.h says why).
struct Guarded {
  ShmMapping map;
  GuardedRange guard;
};

Result<Guarded> Guard(ShmMapping map, bool writer) {
  MS_ASSIGN_OR_RETURN(GuardedRange guard, GuardedRange::Register(std::span(map.base(), map.size()),
                                                                 writer ? GuardAccess::kReadWrite
                                                                        : GuardAccess::kReadOnly));
  return Guarded{std::move(map), std::move(guard)};
}

Result<Guarded> OpenExisting(const std::string& path, bool writer, uint32_t expected_slots,
                             uint32_t expected_message_bytes,
                             ms_channel_header* checked = nullptr) {
  ShmOpenOptions options;
  options.access = writer ? MapAccess::kReadWrite : MapAccess::kReadOnly;
  options.kind = "channel";
  if (writer) options.held_message = "channel " + path + " already has a live writer (flock held)";
  options.header_bytes = MS_CHANNEL_HEADER_BYTES;
  MS_ASSIGN_OR_RETURN(ShmMapping mapped, OpenShmMapping(path, options));
  // Guarded before the first read: the file may be truncated from the moment it is open.
  MS_ASSIGN_OR_RETURN(Guarded g, Guard(std::move(mapped), writer));
  ms_channel_header copy;
  std::memcpy(&copy, g.map.base(), sizeof(copy));
  if (g.guard.damaged()) {
    return Fail(Code::kIOError, "channel " + path + ": file truncated while attaching");
  }
  if (Status s = ValidateChannelHeader(copy, g.map.size(), expected_slots, expected_message_bytes);
      !s) {
    return Fail(s.error().Context("channel " + path));
  }
  if (checked != nullptr) *checked = copy;
  return g;
}

void FillHeader(ms_channel_header* h, const ChannelOptions& options) {
  std::memset(h, 0, sizeof(*h));
  h->magic = MS_CHANNEL_MAGIC;
  h->layout_version = MS_CHANNEL_LAYOUT_VERSION;
  h->header_bytes = MS_CHANNEL_HEADER_BYTES;
  h->slot_count = options.slot_count;
  h->message_bytes = options.message_bytes;
  h->slot_stride = ms_channel_slot_stride(options.message_bytes);
  h->slot_header_bytes = MS_CHANNEL_SLOT_HEADER_BYTES;
  h->file_bytes = ms_channel_file_bytes(options.slot_count, options.message_bytes);
  h->created_unix_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  // The writer_epoch and published_seq start at 0; Recover() makes the creator epoch 1.
}

Result<ShmMapping> CreateNew(const std::string& dir, const std::string& path,
                             const ChannelOptions& options) {
  MS_ASSIGN_OR_RETURN(const UnnamedFile unnamed, CreateUnnamedFile(dir, path));
  // The fallback temp name goes away whatever happens below (O_TMPFILE needs no cleanup).
  struct Forget {
    const UnnamedFile& file;
    ~Forget() { ForgetUnnamedFile(file); }
  } forget{unnamed};
  // Flocked as its writer before anyone can see it: a fresh inode, so this only fails on real
  // errors.
  if (Status s = LockExclusive(unnamed.fd, path, "channel " + path + " is locked"); !s) {
    ::close(unnamed.fd);
    return Fail(s.error());
  }
  // tmpfs zero-fills: every slot version starts at 0.
  MS_ASSIGN_OR_RETURN(
      ShmMapping map,
      SizeAndMapNewFile(unnamed.fd,
                        ms_channel_file_bytes(options.slot_count, options.message_bytes), path));
  FillHeader(map.As<ms_channel_header>(), options);
  // link() never replaces: if another creator won the race we get EEXIST and attach to theirs.
  MS_RETURN_IF_ERROR(LinkUnnamedFile(unnamed, path));
  return map;
}

Status CheckOptions(const ChannelOptions& o) {
  if (o.slot_count == 0 || o.slot_count > MS_CHANNEL_MAX_SLOTS ||
      !std::has_single_bit(o.slot_count)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("slot_count {} is not a power of two in [1, {}]", o.slot_count,
                            MS_CHANNEL_MAX_SLOTS));
  }
  if (o.message_bytes == 0 || o.message_bytes > MS_CHANNEL_MAX_MESSAGE_BYTES) {
    return Fail(Code::kInvalidArgument, fmt::format("message_bytes {} is not in [1, {}]",
                                                    o.message_bytes, MS_CHANNEL_MAX_MESSAGE_BYTES));
  }
  return Ok();
}

}  // namespace

Status ValidateChannelName(std::string_view name) {
  static_assert(MS_CHANNEL_MAX_NAME_BYTES == 63, "names.cc checks 63 bytes");
  return ValidateShmObjectName("channel", name);
}

std::string ChannelPath(std::string_view shm_dir, std::string_view name) {
  return fmt::format("{}/channels/{}.chan", shm_dir, name);
}

Status ValidateChannelHeader(const ms_channel_header& h, uint64_t file_size,
                             uint32_t expected_slots, uint32_t expected_message_bytes) {
  MS_RETURN_IF_ERROR(CheckShmMagicAndVersion("channel", h.magic, MS_CHANNEL_MAGIC, h.layout_version,
                                             MS_CHANNEL_LAYOUT_VERSION));
  if (h.header_bytes != MS_CHANNEL_HEADER_BYTES ||
      h.slot_header_bytes != MS_CHANNEL_SLOT_HEADER_BYTES) {
    return Fail(
        Code::kCorruption,
        fmt::format("header_bytes {} / slot_header_bytes {}, expected {} / {}", h.header_bytes,
                    h.slot_header_bytes, MS_CHANNEL_HEADER_BYTES, MS_CHANNEL_SLOT_HEADER_BYTES));
  }
  if (Status s = CheckOptions({h.slot_count, h.message_bytes}); !s) {
    return Fail(Code::kCorruption, "header: " + s.error().message());
  }
  if (h.slot_stride != ms_channel_slot_stride(h.message_bytes)) {
    return Fail(Code::kCorruption, fmt::format("slot_stride {} does not match message_bytes {}",
                                               h.slot_stride, h.message_bytes));
  }
  const uint64_t want = ms_channel_file_bytes(h.slot_count, h.message_bytes);
  if (h.file_bytes != want) {
    return Fail(Code::kCorruption,
                fmt::format("header file_bytes {}, layout needs {}", h.file_bytes, want));
  }
  if (file_size != want) {
    return Fail(
        Code::kCorruption,
        fmt::format("file is {} bytes, header says {} (truncated or extended)", file_size, want));
  }
  if (expected_message_bytes != 0 && h.message_bytes != expected_message_bytes) {
    return Fail(
        Code::kFailedPrecondition,
        fmt::format("message size mismatch: channel carries {}-byte messages, caller expects {}",
                    h.message_bytes, expected_message_bytes));
  }
  if (expected_slots != 0 && h.slot_count != expected_slots) {
    return Fail(Code::kFailedPrecondition,
                fmt::format("slot count mismatch: channel has {} slots, caller asked for {}",
                            h.slot_count, expected_slots));
  }
  return Ok();
}

Result<ChannelWriter> ChannelWriter::Open(std::string_view shm_dir, std::string_view name,
                                          const ChannelOptions& options) {
  MS_RETURN_IF_ERROR(ValidateChannelName(name));
  MS_RETURN_IF_ERROR(CheckOptions(options));
  const std::string dir = fmt::format("{}/channels", shm_dir);
  const std::string path = ChannelPath(shm_dir, name);
  MS_RETURN_IF_ERROR(MakeShmDirs(dir));
  // Open, else create; a lost creation race (EEXIST) goes round once more to attach.
  for (int attempt = 0; attempt < 3; ++attempt) {
    Result<Guarded> map =
        OpenExisting(path, /*writer=*/true, options.slot_count, options.message_bytes);
    if (!map && map.error().code() == Code::kNotFound) {
      Result<ShmMapping> created = CreateNew(dir, path, options);
      if (!created && created.error().code() == Code::kAlreadyExists) continue;
      if (!created) return Fail(created.error());
      map = Guard(std::move(*created), /*writer=*/true);
    }
    if (!map) return Fail(map.error());
    ChannelWriter writer(std::move(map->map), std::move(map->guard));
    writer.mask_ = options.slot_count - 1;
    writer.message_bytes_ = options.message_bytes;
    writer.stride_ = ms_channel_slot_stride(options.message_bytes);
    writer.Recover();
    if (writer.damaged()) {
      return Fail(Code::kIOError, "channel " + path + ": file truncated while attaching");
    }
    return writer;
  }
  return Fail(Code::kAborted, "channel " + path + ": created and removed concurrently; retry");
}

Result<ChannelReader> ChannelReader::Open(std::string_view shm_dir, std::string_view name,
                                          uint32_t expected_message_bytes, StartAt start) {
  MS_RETURN_IF_ERROR(ValidateChannelName(name));
  ms_channel_header h;
  MS_ASSIGN_OR_RETURN(Guarded map, OpenExisting(ChannelPath(shm_dir, name), /*writer=*/false, 0,
                                                expected_message_bytes, &h));
  ChannelReader reader(std::move(map.map), std::move(map.guard));
  // The checked immutable fields: the hot path never trusts the shared header again.
  reader.mask_ = h.slot_count - 1;
  reader.message_bytes_ = h.message_bytes;
  reader.stride_ = h.slot_stride;
  const uint64_t p = reader.published_seq();
  reader.next_seq_ = p + 1;
  if (start == StartAt::kOldestAvailable)
    reader.next_seq_ = p > reader.mask_ ? p - reader.mask_ : 1;
  return reader;
}

}  // namespace modelswap
