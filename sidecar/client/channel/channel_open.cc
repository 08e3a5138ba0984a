// Creating, attaching to and checking channel files (the protocol itself is in channel.cc).
//
// A channel file only ever appears complete: the creator builds it unnamed (O_TMPFILE, or a
// dot-named temp file where the filesystem lacks it), fills the header, and links it into place
// with a no-replace link, so a reader or a second creator never sees a half-initialised header
// and a creator killed midway leaves nothing behind (O_TMPFILE) or only an ignored dot file.
// Writers hold an exclusive flock on the file for their lifetime; the kernel releases it when the
// process dies however it dies, so a restarted writer never finds a stale lock.
//
// The channel uses POSIX calls directly rather than the project's Env: it lives in the pod's
// memory emptyDir (tmpfs), needs a read-write shared mapping, flock and linkat, none of which Env
// has, and the failures that matter here (processes dying) are tested with real processes.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/names.h"
#include "common/posix_error.h"
#include "common/shm_file.h"
#include "sidecar/client/channel/channel.h"

namespace modelswap {
namespace {

static_assert(std::endian::native == std::endian::little, "channel files are little-endian");

Error Errno(std::string_view call, std::string_view path) {
  return ErrnoError(call, path);
}

Result<ChannelMapping> MapFd(int fd, size_t size, bool writable, std::string path) {
  const int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* base = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    Error error = Errno("mmap", path);
    ::close(fd);
    return Fail(error);
  }
  return ChannelMapping(fd, static_cast<std::byte*>(base), size, std::move(path));
}

// Opens an existing channel file; the writer also takes the flock. Closes fd on every failure.
// `checked` (may be null) receives the header as validated: a copy taken once, because the shared
// header could change between a check and a later read of the same field (the file is group
// writable), and the immutable fields sized the mapping's bounds.
Result<ChannelMapping> OpenExisting(const std::string& path, bool writer, uint32_t expected_slots,
                                    uint32_t expected_message_bytes,
                                    ms_channel_header* checked = nullptr) {
  const int fd = ::open(path.c_str(), (writer ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail(Errno("open", path));
  auto fail = [fd](Error e) {
    ::close(fd);
    return Fail(std::move(e));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(Errno("fstat", path));
  if (!S_ISREG(st.st_mode)) return fail(Error(Code::kCorruption, path + ": not a regular file"));
  if (writer && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return fail(Errno("flock", path));
    return fail(Error(Code::kFailedPrecondition,
                      "channel " + path + " already has a live writer (flock held)"));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < MS_CHANNEL_HEADER_BYTES) {
    return fail(Error(Code::kCorruption,
                      fmt::format("channel {}: file is {} bytes, smaller than the {}-byte header",
                                  path, size, MS_CHANNEL_HEADER_BYTES)));
  }
  MS_ASSIGN_OR_RETURN(ChannelMapping map, MapFd(fd, size, writer, path));
  ms_channel_header copy;
  std::memcpy(&copy, map.header(), sizeof(copy));
  if (Status s = ValidateChannelHeader(copy, size, expected_slots, expected_message_bytes); !s) {
    return Fail(s.error().Context("channel " + path));
  }
  if (checked != nullptr) *checked = copy;
  return map;
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

// A new unnamed file (shm_file.h), flocked as its writer before anyone can see it.
Result<UnnamedFile> CreateLockedUnnamed(const std::string& dir, const std::string& path) {
  MS_ASSIGN_OR_RETURN(UnnamedFile file, CreateUnnamedFile(dir, path));
  if (::flock(file.fd, LOCK_EX | LOCK_NB) != 0) {  // a fresh inode: only fails on real errors
    Error error = Errno("flock", path);
    ::close(file.fd);
    ForgetUnnamedFile(file);
    return Fail(error);
  }
  return file;
}

Result<ChannelMapping> CreateNew(const std::string& dir, std::string_view name,
                                 const std::string& path, const ChannelOptions& options) {
  MS_ASSIGN_OR_RETURN(const UnnamedFile unnamed, CreateLockedUnnamed(dir, path));
  const int fd = unnamed.fd;
  // The fallback temp name goes away whatever happens below (O_TMPFILE needs no cleanup).
  struct Forget {
    const UnnamedFile& file;
    ~Forget() { ForgetUnnamedFile(file); }
  } forget{unnamed};
  const uint64_t size = ms_channel_file_bytes(options.slot_count, options.message_bytes);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {  // tmpfs zero-fills: versions start at 0
    Error error = Errno("ftruncate", path);
    ::close(fd);
    return Fail(error);
  }
  MS_ASSIGN_OR_RETURN(ChannelMapping map, MapFd(fd, size, true, path));
  FillHeader(map.header(), options);
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

// Not `this->~ChannelMapping()`: that would end path_'s lifetime too, and assigning to a
// destroyed string is a double free once its buffer is on the heap.
ChannelMapping& ChannelMapping::operator=(ChannelMapping&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
  }
  return *this;
}

ChannelMapping::~ChannelMapping() {
  Release();
}

void ChannelMapping::Release() {
  if (base_ != nullptr) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);  // also drops a writer's flock
  base_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

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
    Result<ChannelMapping> map =
        OpenExisting(path, /*writer=*/true, options.slot_count, options.message_bytes);
    if (!map && map.error().code() == Code::kNotFound) {
      map = CreateNew(dir, name, path, options);
      if (!map && map.error().code() == Code::kAlreadyExists) continue;
    }
    if (!map) return Fail(map.error());
    ChannelWriter writer(std::move(*map));
    writer.mask_ = options.slot_count - 1;
    writer.message_bytes_ = options.message_bytes;
    writer.stride_ = ms_channel_slot_stride(options.message_bytes);
    writer.Recover();
    return writer;
  }
  return Fail(Code::kAborted, "channel " + path + ": created and removed concurrently; retry");
}

Result<ChannelReader> ChannelReader::Open(std::string_view shm_dir, std::string_view name,
                                          uint32_t expected_message_bytes, StartAt start) {
  MS_RETURN_IF_ERROR(ValidateChannelName(name));
  ms_channel_header h;
  MS_ASSIGN_OR_RETURN(ChannelMapping map, OpenExisting(ChannelPath(shm_dir, name), /*writer=*/false,
                                                       0, expected_message_bytes, &h));
  ChannelReader reader(std::move(map));
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
