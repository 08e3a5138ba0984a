// Region files: naming, creating, attaching to and checking `<shm-dir>/regions/<name>.region`.
//
// Shared by the app side (region.h) and the snapshot host (sidecar/snapshot/), which restores a
// region by building a complete file under no name and linking it into place. The byte layout and
// the commit protocol are in region_layout.h.
//
// A region file only ever appears complete: the creator builds it unnamed (O_TMPFILE, or a
// dot-named temp file where the filesystem lacks it), fills the header, and links it with a
// no-replace link, so nobody sees a half-initialised header and a creator killed midway leaves
// nothing behind. Files, locks and mappings go through common/shm_file.h.
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
#include <utility>

#include "common/mapping_guard.h"
#include "common/shm_file.h"
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

  ms_region_header* header() const { return map_.As<ms_region_header>(); }
  uint64_t* tags() const { return reinterpret_cast<uint64_t*>(base() + header()->tags_offset); }
  uint8_t* dirty() const { return reinterpret_cast<uint8_t*>(base() + header()->dirty_offset); }
  std::byte* work() const { return base() + header()->work_offset; }
  std::byte* slot(int s) const { return base() + header()->slot_offset[s]; }
  const std::string& path() const { return map_.path(); }
  uint64_t inode() const { return map_.inode(); }
  int fd() const { return map_.fd(); }

  // For a child after fork(): see ShmMapping::AbandonAfterFork.
  void AbandonAfterFork() { map_.AbandonAfterFork(); }

  // True once the file was truncated (or a page failed to read) under the mapping. The mapping is
  // registered with the SIGBUS guard (common/mapping_guard.h) read-write, so neither the app's
  // stores nor the host's loads kill the process: the lost pages become private zero pages, and
  // this flag, checked after the accesses it covers, says that what was read or committed since
  // is not the file's. Plain files cannot be sealed against shrinking (F_SEAL_SHRINK is for
  // memfds) and a size check per access would race the truncation, hence the guard.
  bool damaged() const { return guard_.damaged(); }

  // Atomic views of the shared fields; the order at each use is the protocol's (region_layout.h).
  static std::atomic_ref<uint64_t> Atomic(uint64_t& field) { return std::atomic_ref(field); }

 private:
  explicit RegionFile(ShmMapping map) : map_(std::move(map)) {}
  [[nodiscard]] Status Guard();  // registers map_ with the SIGBUS guard
  std::byte* base() const { return map_.base(); }

  ShmMapping map_;
  GuardedRange guard_;  // declared after map_: unregistered before the mapping goes
};

}  // namespace modelswap
