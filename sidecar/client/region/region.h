// App state that survives crashes: a named shared-memory region with commit points.
//
// An app opens `<shm-dir>/regions/<name>.region` (size fixed at creation), writes its state into
// bytes(), and calls Commit() whenever the state is consistent. The agent's snapshot host copies
// committed states to disk and restores the newest one into a new pod's region before the app
// starts. Guarantees:
//   - Commit() is wait-free: a fixed handful of atomic operations plus one memcpy of each block
//     marked dirty since the previous commit; it never waits for the host or for I/O;
//   - after a crash (SIGKILL at any instruction), the next Open() finds exactly one committed
//     state: writes after the last commit are rolled back, and a commit the crash interrupted is
//     completed (the app had finished writing that state when it called Commit());
//   - the host always copies exactly one committed state (region_layout.h has the protocol).
//
// Dirty tracking is explicit: call MarkDirty(offset, length) BEFORE writing those bytes through
// bytes() (or use Write(), which does both). A write to a block that was not marked is not
// committed and, worse, is not rolled back after a crash; the library cannot see plain stores.
// In a region the host restored, the first MarkDirty of each block also copies that block once
// (the restore left its committed version in the work image only; region_layout.h, step W1).
//
// Threading: one app process attaches at a time (an exclusive flock, released by the kernel when
// the process dies). A Region object is used by one thread at a time; the app serialises writes
// and Commit() (commit at a point where no thread is writing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sidecar/client/region/region_file.h"

namespace modelswap {

class Region;
namespace testing_internal {
// Test hook: begins a commit and copies only the first `blocks` dirty blocks, then returns
// without completing it, as a crash in the middle of Commit() would leave the region.
void CommitPartially(Region& region, size_t blocks);
}  // namespace testing_internal

// What Open() found and did, for logs and tests.
struct RegionAttachInfo {
  bool created = false;             // the region did not exist; it starts all zeros at gen 0
  uint64_t rolled_back_blocks = 0;  // uncommitted blocks restored from the last commit
  bool rolled_forward = false;      // an interrupted commit was completed
  uint64_t generation = 0;          // committed generation after recovery
  uint64_t restored_gen = 0;        // generation the host restored this region from (0 = none)
};

class Region {
 public:
  // Creates the region or attaches to an existing one with the same size and block size (else
  // kFailedPrecondition naming both values), recovering as described above. Fails with
  // kFailedPrecondition while another live app is attached.
  [[nodiscard]] static Result<Region> Open(std::string_view shm_dir, std::string_view name,
                                           const RegionOptions& options);

  Region(Region&&) noexcept = default;
  Region& operator=(Region&&) noexcept = default;

  // The app's state; writable. Stable for the life of this object.
  std::span<std::byte> bytes() const { return {file_.work(), size_}; }
  uint64_t size() const { return size_; }
  // In a child after fork(): drops the child's hold on the region file (descriptor and mapping,
  // which would keep the parent's attach lock alive as long as the child lives). bytes() then
  // reads zeros; no other call may follow.
  void AbandonAfterFork() { file_.AbandonAfterFork(); }

  // Declares that [offset, offset + length) is about to change. kInvalidArgument (nothing
  // marked) if the range is outside the region.
  [[nodiscard]] Status MarkDirty(uint64_t offset, uint64_t length);
  // MarkDirty + copy.
  [[nodiscard]] Status Write(uint64_t offset, std::span<const std::byte> data);

  // Makes the current content the new committed state; returns its generation (1, 2, ...).
  uint64_t Commit();

  // Newest committed generation (this process's own view: exact).
  uint64_t generation() const { return next_gen_ - 1; }
  // Newest generation the agent has on disk (fsynced); an estimate, it may advance any time.
  uint64_t durable_generation() const;
  // Blocks marked dirty since the last commit.
  size_t dirty_blocks() const { return dirty_list_.size(); }
  const RegionAttachInfo& attach_info() const { return attach_; }
  // True once the region file was truncated (or a page failed to read) under the mapping: the
  // process survived it (RegionFile::damaged), but writes and commits since then reach no file
  // and the host can no longer snapshot it. Check it after Commit(); re-open to go on.
  bool damaged() const { return file_.damaged(); }
  const std::string& path() const { return file_.path(); }

 private:
  friend void testing_internal::CommitPartially(Region& region, size_t blocks);
  explicit Region(RegionFile file);
  [[nodiscard]] Status Recover();
  void CommitBlock(uint32_t block, uint64_t gen, uint64_t pin);
  void MarkBlocks(uint64_t first, uint64_t last);
  void MoveOutOfWork(uint64_t block);

  RegionFile file_;
  uint64_t size_ = 0;
  uint32_t block_bytes_ = 0;
  uint32_t block_shift_ = 0;
  uint64_t block_count_ = 0;
  uint64_t next_gen_ = 1;
  // Reserved to min(block_count, kMaxReservedDirty): marking allocates only in larger regions,
  // and appends before setting a flag, so a failed allocation leaves no flag without its entry.
  std::vector<uint32_t> dirty_list_;
  RegionAttachInfo attach_;
};

}  // namespace modelswap
