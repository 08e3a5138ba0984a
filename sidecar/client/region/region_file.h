// Region files: naming, creating, attaching to and checking `<shm-dir>/regions/<name>.region`.
//
// Shared by the app side (region.h) and the snapshot host (sidecar/snapshot/), which restores a
// region by building a complete file under no name and linking it into place. The byte layout and
// the commit protocol are in region_layout.h.
//
// A region file only ever appears complete: the creator builds it unnamed (O_TMPFILE, or a
// dot-named temp file where the filesystem lacks it), fills the header, and links it with a
// no-replace link, so nobody sees a half-initialised header and a creator killed midway leaves
// nothing behind. Like channels, regions use POSIX directly rather than Env: they live in the
// pod's memory emptyDir and need shared read-write mappings, flock and linkat.
//
// Thread safety: a RegionFile is a move-only handle; its accessors are safe from any thread, the
// shared memory behind them follows the protocol in region_layout.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "sidecar/client/region/region_layout.h"

namespace modelswap {

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free, "region tags need lock-free u64");
static_assert(std::atomic_ref<uint8_t>::is_always_lock_free, "dirty flags need lock-free u8");

struct RegionOptions {
  // Size of the app's span, in [1, MS_REGION_MAX_BYTES]. Fixed at creation.
  uint64_t bytes = 0;
  // Dirty-tracking unit: a power of two in [MS_REGION_MIN_BLOCK_BYTES, MS_REGION_MAX_BLOCK_BYTES].
  // Smaller blocks copy less per small change; larger blocks make the host's writes longer.
  uint32_t block_bytes = MS_REGION_DEFAULT_BLOCK_BYTES;
};

// Checks a region name: [A-Za-z0-9][A-Za-z0-9._-]{0,62}, so it cannot escape the directory.
[[nodiscard]] Status ValidateRegionName(std::string_view name);
[[nodiscard]] Status ValidateRegionOptions(const RegionOptions& options);
std::string RegionsDir(std::string_view shm_dir);
// `<shm_dir>/regions/<name>.region` (name must be valid).
std::string RegionPath(std::string_view shm_dir, std::string_view name);

// Checks a mapped header against the file size and (when non-zero) the caller's expectations.
// Each failed check has its own message. Exposed for tests.
[[nodiscard]] Status ValidateRegionHeader(const ms_region_header& header, uint64_t file_size,
                                          const RegionOptions& expected);

// A mapped region file (read-write, shared); move-only. Unmaps and closes (dropping any flock).
class RegionFile {
 public:
  enum class Lock { kNone, kExclusive };

  RegionFile() = default;
  RegionFile(RegionFile&& other) noexcept { *this = std::move(other); }
  RegionFile& operator=(RegionFile&& other) noexcept;
  RegionFile(const RegionFile&) = delete;
  RegionFile& operator=(const RegionFile&) = delete;
  ~RegionFile();

  // Attaches to an existing region. kExclusive takes a non-blocking exclusive flock first
  // (kFailedPrecondition while another live app holds it). kNotFound if there is none.
  [[nodiscard]] static Result<RegionFile> Open(const std::string& path, Lock lock,
                                               const RegionOptions& expected);
  // Builds a new region under no name (zeroed, header filled, flocked if kExclusive); `fill` may
  // write content and fields before the file gets its name. Then links it at `path`:
  // kAlreadyExists (and nothing left behind) if a region of that name exists already.
  [[nodiscard]] static Result<RegionFile> Create(
      const std::string& path, Lock lock, const RegionOptions& options,
      const std::function<Status(RegionFile&)>& fill = nullptr);

  ms_region_header* header() const { return reinterpret_cast<ms_region_header*>(base_); }
  uint64_t* tags() const { return reinterpret_cast<uint64_t*>(base_ + header()->tags_offset); }
  uint8_t* dirty() const { return reinterpret_cast<uint8_t*>(base_ + header()->dirty_offset); }
  std::byte* work() const { return base_ + header()->work_offset; }
  std::byte* slot(int s) const { return base_ + header()->slot_offset[s]; }
  const std::string& path() const { return path_; }
  uint64_t inode() const { return inode_; }
  int fd() const { return fd_; }

  // For a child after fork(): lets go of the file without unmapping the address range (stale
  // pointers into it stay valid, reading zeros). The mapping, not only the descriptor, holds the
  // file open, and with it the parent's flock; both are dropped here.
  void AbandonAfterFork();

  // Atomic views of the shared fields; the order at each use is the protocol's (region_layout.h).
  static std::atomic_ref<uint64_t> Atomic(uint64_t& field) { return std::atomic_ref(field); }

 private:
  RegionFile(int fd, std::byte* base, size_t size, std::string path, uint64_t inode)
      : fd_(fd), base_(base), size_(size), path_(std::move(path)), inode_(inode) {}
  void Release();  // unmaps and closes (drops an app's flock); leaves it empty

  int fd_ = -1;
  std::byte* base_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint64_t inode_ = 0;
};

}  // namespace modelswap
