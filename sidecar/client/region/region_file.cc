// Creating, attaching to and checking region files (the commit protocol is in region.cc and
// sidecar/client/region/region_view.cc). See region_file.h for the creation and locking rules.
#include "sidecar/client/region/region_file.h"

#include "common/names.h"
#include "common/posix_error.h"
#include "common/shm_file.h"

#include <fcntl.h>
#include <spdlog/fmt/fmt.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

namespace modelswap {
namespace {

static_assert(std::endian::native == std::endian::little, "region files are little-endian");

Error Errno(std::string_view call, std::string_view path) {
  return ErrnoError(call, path);
}

Status TakeLock(int fd, RegionFile::Lock lock, const std::string& path) {
  if (lock == RegionFile::Lock::kNone || ::flock(fd, LOCK_EX | LOCK_NB) == 0) return Ok();
  if (errno != EWOULDBLOCK) return Fail(Errno("flock", path));
  return Fail(Code::kFailedPrecondition,
              "region " + path + " is attached by another live app (flock held)");
}

}  // namespace

Status ValidateRegionName(std::string_view name) {
  static_assert(MS_REGION_MAX_NAME_BYTES == 63, "names.cc checks 63 bytes");
  return ValidateShmObjectName("region", name);
}

Status ValidateRegionOptions(const RegionOptions& o) {
  if (o.bytes == 0 || o.bytes > MS_REGION_MAX_BYTES) {
    return Fail(Code::kInvalidArgument,
                fmt::format("region size {} is not in [1, {}]", o.bytes, MS_REGION_MAX_BYTES));
  }
  if (o.block_bytes < MS_REGION_MIN_BLOCK_BYTES || o.block_bytes > MS_REGION_MAX_BLOCK_BYTES ||
      !std::has_single_bit(o.block_bytes)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("block size {} is not a power of two in [{}, {}]", o.block_bytes,
                            MS_REGION_MIN_BLOCK_BYTES, MS_REGION_MAX_BLOCK_BYTES));
  }
  return Ok();
}

std::string RegionsDir(std::string_view shm_dir) {
  return fmt::format("{}/regions", shm_dir);
}

std::string RegionPath(std::string_view shm_dir, std::string_view name) {
  return fmt::format("{}/regions/{}.region", shm_dir, name);
}

Status ValidateRegionHeader(const ms_region_header& h, uint64_t file_size,
                            const RegionOptions& expected) {
  MS_RETURN_IF_ERROR(CheckShmMagicAndVersion("region", h.magic, MS_REGION_MAGIC, h.layout_version,
                                             MS_REGION_LAYOUT_VERSION));
  if (Status s = ValidateRegionOptions({h.region_bytes, h.block_bytes}); !s) {
    return Fail(Code::kCorruption, "header: " + s.error().message());
  }
  ms_region_header want{};
  ms_region_geometry(&want, h.region_bytes, h.block_bytes);
  if (h.header_bytes != want.header_bytes || h.block_count != want.block_count ||
      h.tags_offset != want.tags_offset || h.dirty_offset != want.dirty_offset ||
      h.work_offset != want.work_offset || h.slot_offset[0] != want.slot_offset[0] ||
      h.slot_offset[1] != want.slot_offset[1] || h.file_bytes != want.file_bytes) {
    return Fail(Code::kCorruption,
                fmt::format("header geometry does not follow from region_bytes {} and "
                            "block_bytes {}",
                            h.region_bytes, h.block_bytes));
  }
  if (file_size != h.file_bytes) {
    return Fail(Code::kCorruption, fmt::format("file is {} bytes, header says {} (truncated or "
                                               "extended)",
                                               file_size, h.file_bytes));
  }
  if (expected.bytes != 0 && h.region_bytes != expected.bytes) {
    return Fail(Code::kFailedPrecondition,
                fmt::format("size mismatch: region holds {} bytes, caller expects {}",
                            h.region_bytes, expected.bytes));
  }
  if (expected.block_bytes != 0 && h.block_bytes != expected.block_bytes) {
    return Fail(Code::kFailedPrecondition,
                fmt::format("block size mismatch: region uses {}-byte blocks, caller expects {}",
                            h.block_bytes, expected.block_bytes));
  }
  return Ok();
}

// Not `this->~RegionFile()`: that would end path_'s lifetime too, and assigning to a destroyed
// string is a double free once its buffer is on the heap.
RegionFile& RegionFile::operator=(RegionFile&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
    inode_ = std::exchange(other.inode_, 0);
  }
  return *this;
}

RegionFile::~RegionFile() {
  Release();
}

void RegionFile::Release() {
  if (base_ != nullptr) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);  // also drops an app's flock
  base_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

void RegionFile::AbandonAfterFork() {
  if (base_ != nullptr) {
    // MAP_FIXED replaces the shared file mapping in place with private zero pages.
    (void)::mmap(base_, size_, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
                 0);
  }
  if (fd_ >= 0) ::close(fd_);
  base_ = nullptr;  // nothing left for the destructor to unmap or close
  fd_ = -1;
}

Result<RegionFile> RegionFile::Open(const std::string& path, Lock lock,
                                    const RegionOptions& expected) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail(Errno("open", path));
  auto fail = [fd](Error e) {
    ::close(fd);
    return Fail(std::move(e));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(Errno("fstat", path));
  if (!S_ISREG(st.st_mode)) return fail(Error(Code::kCorruption, path + ": not a regular file"));
  if (Status s = TakeLock(fd, lock, path); !s) return fail(s.error());
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < MS_REGION_HEADER_BYTES) {
    return fail(Error(Code::kCorruption,
                      fmt::format("region {}: file is {} bytes, smaller than the {}-byte header",
                                  path, size, MS_REGION_HEADER_BYTES)));
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail(Errno("mmap", path));
  RegionFile file(fd, static_cast<std::byte*>(base), size, path, st.st_ino);
  if (Status s = ValidateRegionHeader(*file.header(), size, expected); !s) {
    return Fail(s.error().Context("region " + path));
  }
  return file;
}

Result<RegionFile> RegionFile::Create(const std::string& path, Lock lock,
                                      const RegionOptions& options,
                                      const std::function<Status(RegionFile&)>& fill) {
  MS_RETURN_IF_ERROR(ValidateRegionOptions(options));
  const std::string dir = path.substr(0, path.rfind('/'));
  MS_RETURN_IF_ERROR(MakeShmDirs(dir));
  MS_ASSIGN_OR_RETURN(const UnnamedFile unnamed, CreateUnnamedFile(dir, path));
  const int fd = unnamed.fd;
  const std::string& temp = unnamed.temp;
  auto fail = [fd, &temp](Error e) {
    ::close(fd);
    if (!temp.empty()) ::unlink(temp.c_str());
    return Fail(std::move(e));
  };
  if (Status s = TakeLock(fd, lock, path); !s) return fail(s.error());
  ms_region_header geometry{};
  ms_region_geometry(&geometry, options.bytes, options.block_bytes);
  // tmpfs zero-fills and allocates pages only when written: tags start at 0 = "all zeros".
  if (::ftruncate(fd, static_cast<off_t>(geometry.file_bytes)) != 0)
    return fail(Errno("ftruncate", path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(Errno("fstat", path));
  void* base = ::mmap(nullptr, geometry.file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail(Errno("mmap", path));
  RegionFile file(fd, static_cast<std::byte*>(base), geometry.file_bytes, path, st.st_ino);
  ms_region_header* h = file.header();
  ms_region_geometry(h, options.bytes, options.block_bytes);
  h->magic = MS_REGION_MAGIC;
  h->layout_version = MS_REGION_LAYOUT_VERSION;
  h->created_unix_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  auto cleanup = [&temp] {
    if (!temp.empty()) ::unlink(temp.c_str());
  };
  if (fill) {
    if (Status s = fill(file); !s) {
      cleanup();
      return Fail(s.error());
    }
  }
  Status linked = LinkUnnamedFile(unnamed, path);
  cleanup();
  if (!linked) return Fail(linked.error());
  return file;
}

}  // namespace modelswap
