// Host steps 1-4 of the region protocol; see region_layout.h for the pairing of every access.
#include "sidecar/client/region/region_view.h"

#include <spdlog/fmt/fmt.h>

#include <atomic>
#include <cstring>

namespace modelswap::snapshot {
namespace {
using Ref64 = std::atomic_ref<uint64_t>;
}  // namespace

Result<RegionView> RegionView::Open(const std::string& shm_dir, const std::string& name) {
  MS_RETURN_IF_ERROR(ValidateRegionName(name));
  MS_ASSIGN_OR_RETURN(RegionFile file, RegionFile::Open(RegionPath(shm_dir, name),
                                                        RegionFile::Lock::kNone, RegionOptions{}));
  return RegionView(name, std::move(file));
}

uint64_t RegionView::committed_gen() const {
  // Acquire: pairs with the app's release store of committed_gen (app step 4).
  return Ref64(file_.header()->committed_gen).load(std::memory_order_acquire);
}

uint64_t RegionView::durable_gen() const {
  // Relaxed: only the host writes it; this thread (or an earlier host process, before it died)
  // stored it.
  return Ref64(file_.header()->durable_gen).load(std::memory_order_relaxed);
}

Result<uint64_t> RegionView::Pin() {
  ms_region_header* h = file_.header();
  // Step 1. Acquire on committed_gen pairs with app step 4; acquire on committing_gen so that a
  // commit that has begun is not missed in favour of a stale value (either order would do).
  const uint64_t c = Ref64(h->committed_gen).load(std::memory_order_acquire);
  const uint64_t k = Ref64(h->committing_gen).load(std::memory_order_acquire);
  if (k != c) {
    return Fail(Code::kUnavailable,
                fmt::format("region {}: commit {} is running (or was interrupted)", name_, k));
  }
  // Step 2. Seq_cst store + seq_cst load: the Dekker pair with app steps 1-2. If the re-check
  // still sees no new commit begun, every commit from now on loads pin c.
  Ref64(h->pin_gen).store(c, std::memory_order_seq_cst);
  if (Ref64(h->committing_gen).load(std::memory_order_seq_cst) != c) {
    return Fail(Code::kUnavailable,
                fmt::format("region {}: a commit began while pinning generation {}", name_, c));
  }
  return c;
}

Result<RegionView::BlockVersion> RegionView::PinnedVersion(uint64_t block, uint64_t pin) const {
  const uint64_t t0 = Tag(block, 0), t1 = Tag(block, 1);
  const int slot = ms_region_read_slot(t0, t1, pin);
  if (slot < 0) {
    return Fail(Code::kInternal,
                fmt::format("region {}: block {} has no version at pinned generation {} (tags "
                            "{}, {}): the app broke the commit protocol",
                            name_, block, pin, t0, t1));
  }
  return BlockVersion{slot, slot == 0 ? t0 : t1, slot == 0 && t1 == MS_REGION_TAG_IN_WORK};
}

const std::byte* RegionView::ReadInWork(uint64_t block, std::byte* out) const {
  const uint64_t off = block * block_bytes();
  std::memcpy(out, file_.work() + off, block_bytes());
  // Acquire fence, then the re-load: the seqlock reader's pair of app step W1's release fence. If
  // the copy read any byte the app wrote after W1, the tag store W1 made before its fence is
  // visible to the load below. Acquire on the load itself pairs with W1's release store, so a
  // moved version's slot-0 bytes are visible when we return slot 0.
  std::atomic_thread_fence(std::memory_order_acquire);
  if (Tag(block, 1) == MS_REGION_TAG_IN_WORK) return out;
  return BlockData(block, 0);
}

uint64_t RegionView::Tag(uint64_t block, int slot) const {
  // Acquire (step 3): pairs with the app's release store of the tag after copying the block, so
  // a tag <= pin names a complete copy.
  return Ref64(file_.tags()[2 * block + static_cast<uint64_t>(slot)])
      .load(std::memory_order_acquire);
}

void RegionView::PublishDurable(uint64_t gen) {
  // Release (step 4): pairs with Region::durable_generation()'s acquire; the app only reads it.
  Ref64(file_.header()->durable_gen).store(gen, std::memory_order_release);
}

}  // namespace modelswap::snapshot
