// Creating, attaching to and checking region files (the commit protocol is in region.cc and
// sidecar/client/region/region_view.cc). See region_file.h for the creation and locking rules.
#include "sidecar/client/region/region_file.h"

#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <utility>

#include "common/names.h"
#include "common/shm_file.h"

namespace modelswap {
namespace {

static_assert(std::endian::native == std::endian::little, "region files are little-endian");

// The flock an attached app holds, as LockExclusive's message when another live app holds it.
std::string HeldMessage(RegionFile::Lock lock, const std::string& path) {
  if (lock == RegionFile::Lock::kNone) return "";
  return "region " + path + " is attached by another live app (flock held)";
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

Status RegionFile::Guard() {
  MS_ASSIGN_OR_RETURN(
      guard_, GuardedRange::Register(std::span(map_.base(), map_.size()), GuardAccess::kReadWrite));
  return Ok();
}

Result<RegionFile> RegionFile::Open(const std::string& path, Lock lock,
                                    const RegionOptions& expected) {
  ShmOpenOptions options;
  options.kind = "region";
  options.held_message = HeldMessage(lock, path);
  options.header_bytes = MS_REGION_HEADER_BYTES;
  MS_ASSIGN_OR_RETURN(ShmMapping map, OpenShmMapping(path, options));
  RegionFile file(std::move(map));
  MS_RETURN_IF_ERROR(file.Guard());  // before the first read: it may be truncated from now on
  if (Status s = ValidateRegionHeader(*file.header(), file.map_.size(), expected); !s) {
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
  // The fallback temp name goes away whatever happens below (O_TMPFILE needs no cleanup).
  struct Forget {
    const UnnamedFile& file;
    ~Forget() { ForgetUnnamedFile(file); }
  } forget{unnamed};
  if (lock == Lock::kExclusive) {
    if (Status s = LockExclusive(unnamed.fd, path, HeldMessage(lock, path)); !s) {
      ::close(unnamed.fd);
      return Fail(s.error());
    }
  }
  ms_region_header geometry{};
  ms_region_geometry(&geometry, options.bytes, options.block_bytes);
  // tmpfs zero-fills and allocates pages only when written: tags start at 0 = "all zeros".
  MS_ASSIGN_OR_RETURN(ShmMapping map, SizeAndMapNewFile(unnamed.fd, geometry.file_bytes, path));
  RegionFile file(std::move(map));
  MS_RETURN_IF_ERROR(file.Guard());
  ms_region_header* h = file.header();
  ms_region_geometry(h, options.bytes, options.block_bytes);
  h->magic = MS_REGION_MAGIC;
  h->layout_version = MS_REGION_LAYOUT_VERSION;
  h->created_unix_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  if (fill) MS_RETURN_IF_ERROR(fill(file));
  MS_RETURN_IF_ERROR(LinkUnnamedFile(unnamed, path));
  return file;
}

}  // namespace modelswap
