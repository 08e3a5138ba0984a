// The snapshot host's side of the region protocol (region_layout.h, "Host snapshot"): reading
// the app's generations, pinning one committed generation, finding each block's pinned version,
// and publishing the durable generation.
//
// The host never takes the app's flock and never writes anything the app writes: only pin_gen
// and durable_gen (its own cache line). So nothing the host does, including dying, makes the app
// wait.
//
// Thread safety: used by the snapshot host's one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "common/status.h"
#include "sidecar/client/region/region_file.h"

namespace modelswap::snapshot {

class RegionView {
 public:
  // Attaches to `<shm_dir>/regions/<name>.region` without locking it.
  [[nodiscard]] static Result<RegionView> Open(const std::string& shm_dir, const std::string& name);

  const std::string& name() const { return name_; }
  const RegionFile& file() const { return file_; }
  uint64_t region_bytes() const { return file_.header()->region_bytes; }
  uint32_t block_bytes() const { return file_.header()->block_bytes; }
  uint64_t block_count() const { return file_.header()->block_count; }

  // Newest completed commit (acquire: the commit's blocks and tags are visible).
  uint64_t committed_gen() const;
  uint64_t durable_gen() const;

  // Host steps 1-2: pins the newest committed generation and returns it. kUnavailable while a
  // commit is running (or was interrupted by an app crash and awaits the app's next attach):
  // try again later.
  [[nodiscard]] Result<uint64_t> Pin();
  // Host step 3: the slot holding block b at the pinned generation, and that slot's tag
  // (0 = the block is all zeros). kInternal if the app broke the protocol.
  struct BlockVersion {
    int slot = 0;
    uint64_t tag = 0;
    bool in_work = false;  // slot 0 is not filled yet: read it with ReadInWork()
  };
  [[nodiscard]] Result<BlockVersion> PinnedVersion(uint64_t block, uint64_t pin) const;
  // The tag currently in a slot (to check afterwards that a copied version did not move).
  uint64_t Tag(uint64_t block, int slot) const;
  const std::byte* BlockData(uint64_t block, int slot) const {
    return file_.slot(slot) + block * block_bytes();
  }
  // Host step 3 for a block in work: copies the work image's block into out (block_bytes()
  // bytes) and returns where the pinned version is: out, or slot 0 if the app moved the version
  // there while we copied (our copy may then hold its new writes).
  const std::byte* ReadInWork(uint64_t block, std::byte* out) const;
  // Host step 4.
  void PublishDurable(uint64_t gen);

 private:
  RegionView(std::string name, RegionFile file) : name_(std::move(name)), file_(std::move(file)) {}

  std::string name_;
  RegionFile file_;
};

}  // namespace modelswap::snapshot
