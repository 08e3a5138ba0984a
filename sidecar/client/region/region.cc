// The app side of the region protocol: dirty marking, Commit(), and recovery at attach. The
// protocol, with the memory order of every step and what it pairs with, is in region_layout.h;
// the comments here name the step each access implements.
#include "sidecar/client/region/region.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

namespace modelswap {
namespace {

using Ref64 = std::atomic_ref<uint64_t>;
using Ref8 = std::atomic_ref<uint8_t>;

// Bounded so a huge region with sparse changes does not reserve gigabytes up front.
constexpr uint64_t kMaxReservedDirty = uint64_t{1} << 22;

}  // namespace

Region::Region(RegionFile file) : file_(std::move(file)) {
  const ms_region_header* h = file_.header();
  size_ = h->region_bytes;
  block_bytes_ = h->block_bytes;
  block_shift_ = static_cast<uint32_t>(std::countr_zero(h->block_bytes));
  block_count_ = h->block_count;
  dirty_list_.reserve(std::min(block_count_, kMaxReservedDirty));
}

Result<Region> Region::Open(std::string_view shm_dir, std::string_view name,
                            const RegionOptions& options) {
  MS_RETURN_IF_ERROR(ValidateRegionName(name));
  MS_RETURN_IF_ERROR(ValidateRegionOptions(options));
  const std::string path = RegionPath(shm_dir, name);
  // Attach, else create; a lost creation race (kAlreadyExists) goes round once more to attach.
  for (int attempt = 0; attempt < 3; ++attempt) {
    bool created = false;
    Result<RegionFile> file = RegionFile::Open(path, RegionFile::Lock::kExclusive, options);
    if (!file && file.error().code() == Code::kNotFound) {
      file = RegionFile::Create(path, RegionFile::Lock::kExclusive, options);
      if (!file && file.error().code() == Code::kAlreadyExists) continue;
      created = true;
    }
    if (!file) return Fail(file.error());
    Region region(std::move(*file));
    region.attach_.created = created;
    if (!created) MS_RETURN_IF_ERROR(region.Recover());
    ms_region_header* h = region.file_.header();
    // Relaxed: a diagnostic counter only this (flock-holding) app writes.
    Ref64(h->app_attaches).fetch_add(1, std::memory_order_relaxed);
    region.attach_.generation = region.generation();
    // Acquire: pairs with the host's release when it restored the region (diagnostics only).
    region.attach_.restored_gen = Ref64(h->restored_gen).load(std::memory_order_acquire);
    return region;
  }
  return Fail(Code::kAborted, "region " + path + ": created and removed concurrently; retry");
}

Status Region::Recover() {
  ms_region_header* h = file_.header();
  // Relaxed: only attached apps write these, and we hold the flock that excludes the others;
  // the previous holder's stores are visible because its death and our flock synchronise.
  const uint64_t committing = Ref64(h->committing_gen).load(std::memory_order_relaxed);
  const uint64_t committed = Ref64(h->committed_gen).load(std::memory_order_relaxed);
  if (committing != committed && committing != committed + 1) {
    return Fail(Code::kCorruption,
                fmt::format("region {}: committing_gen {} and committed_gen {} differ by more "
                            "than one commit",
                            file_.path(), committing, committed));
  }
  const bool forward = committing == committed + 1;
  // Seq_cst: the pin the interrupted commit used (app step 2). The host cannot have moved it
  // since: it pins only while committing_gen == committed_gen.
  const uint64_t pin = Ref64(h->pin_gen).load(std::memory_order_seq_cst);
  uint8_t* dirty = file_.dirty();
  uint64_t touched = 0;
  for (uint64_t b = 0; b < block_count_; ++b) {
    if (Ref8(dirty[b]).load(std::memory_order_relaxed) == 0) continue;
    ++touched;
    if (forward) {
      CommitBlock(static_cast<uint32_t>(b), committing, pin);  // step R2
      continue;
    }
    const uint64_t* tags = file_.tags() + 2 * b;  // step R1
    const int s = ms_region_newest_slot(tags[0], tags[1]);
    std::memcpy(file_.work() + (b << block_shift_), file_.slot(s) + (b << block_shift_),
                block_bytes_);
    Ref8(dirty[b]).store(0, std::memory_order_release);  // after the copy: a crash redoes it
  }
  if (forward) {
    // Release: pairs with the host's acquire of committed_gen (host step 1), as in Commit().
    Ref64(h->committed_gen).store(committing, std::memory_order_release);
    Ref64(h->rollforwards).fetch_add(1, std::memory_order_relaxed);  // diagnostic counter
    attach_.rolled_forward = true;
  } else if (touched > 0) {
    Ref64(h->rollbacks).fetch_add(1, std::memory_order_relaxed);  // diagnostic counter
    attach_.rolled_back_blocks = touched;
  }
  next_gen_ = committing + 1;
  return Ok();
}

// Step W1: a restored block's committed version is in the work image only; put it in slot 0
// before the app overwrites it, so rollback, commit and the host find it there.
void Region::MoveOutOfWork(uint64_t block) {
  uint64_t& tag1 = file_.tags()[2 * block + 1];
  // Relaxed: after the restore only this app stores tags; the host only reads them.
  if (Ref64(tag1).load(std::memory_order_relaxed) != MS_REGION_TAG_IN_WORK) return;
  const uint64_t off = block << block_shift_;
  std::memcpy(file_.slot(0) + off, file_.work() + off, block_bytes_);
  // Release: the slot-0 copy is visible before the tag saying it is there; pairs with the host's
  // acquire re-load of the tag (host step 3).
  Ref64(tag1).store(0, std::memory_order_release);
  // Release fence: the seqlock writer's fence. The app's coming writes to work[block] are after
  // it, so a host whose copy of work[block] saw any of them sees the tag store above after its
  // own acquire fence, and discards that copy.
  std::atomic_thread_fence(std::memory_order_release);
}

void Region::MarkBlocks(uint64_t first, uint64_t last) {
  uint8_t* dirty = file_.dirty();
  for (uint64_t b = first; b <= last; ++b) {
    // Relaxed: only this app reads or writes dirty flags (the host never looks at them).
    if (Ref8(dirty[b]).load(std::memory_order_relaxed) != 0) continue;
    MoveOutOfWork(b);
    dirty_list_.push_back(static_cast<uint32_t>(b));  // first: it may throw (see dirty_list_)
    Ref8(dirty[b]).store(1, std::memory_order_relaxed);
  }
  // The flags must reach memory before the app's writes to those blocks, so that a crash between
  // the two still rolls the blocks back. Only the compiler could reorder them (a killed process
  // loses no stores), so a signal fence is enough.
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

Status Region::MarkDirty(uint64_t offset, uint64_t length) {
  if (offset > size_ || length > size_ - offset) {
    return Fail(Code::kInvalidArgument,
                fmt::format("region {}: range [{}, +{}) is outside its {} bytes", file_.path(),
                            offset, length, size_));
  }
  if (length == 0) return Ok();
  MarkBlocks(offset >> block_shift_, (offset + length - 1) >> block_shift_);
  return Ok();
}

Status Region::Write(uint64_t offset, std::span<const std::byte> data) {
  MS_RETURN_IF_ERROR(MarkDirty(offset, data.size()));
  std::memcpy(file_.work() + offset, data.data(), data.size());
  return Ok();
}

void Region::CommitBlock(uint32_t block, uint64_t gen, uint64_t pin) {
  uint64_t* tags = file_.tags() + 2 * uint64_t{block};
  // Relaxed: this app is the only writer of tags.
  const int s = ms_region_write_slot(Ref64(tags[0]).load(std::memory_order_relaxed),
                                     Ref64(tags[1]).load(std::memory_order_relaxed), pin);
  const uint64_t off = uint64_t{block} << block_shift_;
  std::memcpy(file_.slot(s) + off, file_.work() + off, block_bytes_);
  // Release (step 3): the copy is visible before the tag that names it; pairs with the host's
  // acquire load of the tags (host step 3).
  Ref64(tags[s]).store(gen, std::memory_order_release);
  // Release: the flag is cleared only after the tag store, so a crash before it redoes the block.
  Ref8(file_.dirty()[block]).store(0, std::memory_order_release);
}

uint64_t Region::Commit() {
  ms_region_header* h = file_.header();
  const uint64_t gen = next_gen_;
  // Seq_cst (step 1) and seq_cst load (step 2): a Dekker pair with the host's pin store and its
  // re-check of committing_gen (host step 2): either the host sees this commit begin and retries
  // later, or this commit sees the host's new pin.
  Ref64(h->committing_gen).store(gen, std::memory_order_seq_cst);
  const uint64_t pin = Ref64(h->pin_gen).load(std::memory_order_seq_cst);
  for (const uint32_t block : dirty_list_)
    CommitBlock(block, gen, pin);
  dirty_list_.clear();
  // Release (step 4): every block copy and tag of this commit is visible to a host that acquires
  // committed_gen == gen (host step 1).
  Ref64(h->committed_gen).store(gen, std::memory_order_release);
  next_gen_ = gen + 1;
  return gen;
}

uint64_t Region::durable_generation() const {
  // Acquire: pairs with the host's release store after the snapshot file is durable (host step 4).
  return Ref64(file_.header()->durable_gen).load(std::memory_order_acquire);
}

namespace testing_internal {

void CommitPartially(Region& region, size_t blocks) {
  ms_region_header* h = region.file_.header();
  const uint64_t gen = region.next_gen_;
  Ref64(h->committing_gen).store(gen, std::memory_order_seq_cst);
  const uint64_t pin = Ref64(h->pin_gen).load(std::memory_order_seq_cst);
  for (size_t i = 0; i < blocks && i < region.dirty_list_.size(); ++i)
    region.CommitBlock(region.dirty_list_[i], gen, pin);
}

}  // namespace testing_internal
}  // namespace modelswap
