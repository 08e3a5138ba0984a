// The fillers: a full image chunk by chunk; a delta's index, then its packed blocks.
#include "sidecar/snapshot/region_filler.h"

#include <fcntl.h>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "common/posix_error.h"

namespace modelswap::snapshot {
namespace {

// Relaxed: the region has no name yet; linking it publishes everything to later openers.
void SetTags(RegionFile& region, uint64_t block, uint64_t tag0, uint64_t tag1) {
  uint64_t* tags = region.tags() + 2 * block;
  std::atomic_ref(tags[0]).store(tag0, std::memory_order_relaxed);
  std::atomic_ref(tags[1]).store(tag1, std::memory_order_relaxed);
}

bool IsZero(const std::byte* p, size_t n) {
  return p[0] == std::byte{0} && std::memcmp(p, p + 1, n - 1) == 0;
}

// Writes bytes into the region file with pwrite(2) rather than through the mapping: on tmpfs a
// full-page write allocates the page without zeroing it first and takes no page fault (about
// twice as fast for a fresh region), and a full emptyDir is an ENOSPC error, not a SIGBUS.
Status WriteRegion(const RegionFile& region, const std::byte* data, size_t n, uint64_t at) {
  while (n > 0) {
    const ssize_t w = ::pwrite(region.fd(), data, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Fail(ErrnoError("pwrite", "region " + region.path()));
    if (w == 0) {  // no errno to report: pwrite(2) made no progress
      return Fail(Code::kIOError, fmt::format("pwrite region {}: wrote nothing", region.path()));
    }
    data += w;
    n -= static_cast<size_t>(w);
    at += static_cast<uint64_t>(w);
  }
  return Ok();
}

// A block that became zero: a hole again (tmpfs frees the page), else written with zeros.
Status ZeroBlock(RegionFile& region, uint64_t block) {
  const ms_region_header* h = region.header();
  const uint64_t at = h->work_offset + block * h->block_bytes;
  if (::fallocate(region.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(at),
                  h->block_bytes) != 0) {
    if (errno != EOPNOTSUPP) return Fail(ErrnoError("punch hole in", "region " + region.path()));
    const std::vector<std::byte> zeros(h->block_bytes);
    MS_RETURN_IF_ERROR(WriteRegion(region, zeros.data(), zeros.size(), at));
  }
  SetTags(region, block, 0, 0);
  return Ok();
}

}  // namespace

Status FillFromFull(RegionFile& region, uint64_t gen, uint64_t off,
                    std::span<const std::byte> chunk) {
  const ms_region_header* h = region.header();
  const uint32_t bs = h->block_bytes;
  size_t run = 0, run_len = 0;  // a run of non-zero blocks, written with one pwrite
  auto flush = [&]() -> Status {
    if (run_len == 0) return Ok();
    MS_RETURN_IF_ERROR(
        WriteRegion(region, chunk.data() + run, run_len, h->work_offset + off + run));
    run_len = 0;
    return Ok();
  };
  for (size_t at = 0; at < chunk.size(); at += bs) {
    const size_t n = std::min<size_t>(bs, chunk.size() - at);
    if (IsZero(chunk.data() + at, n)) {
      MS_RETURN_IF_ERROR(flush());
      continue;
    }
    if (run_len == 0) run = at;
    run_len += n;
    SetTags(region, (off + at) / bs, gen, MS_REGION_TAG_IN_WORK);
  }
  return flush();
}

DeltaFiller::DeltaFiller(RegionFile& region, const SnapshotHeader& delta, uint64_t gen)
    : region_(region), delta_(delta), gen_(gen), index_bytes_(DeltaIndexBytes(delta.entry_count)) {
  index_.reserve(static_cast<size_t>(index_bytes_));
}

Status DeltaFiller::Add(uint64_t offset, std::span<const std::byte> chunk) {
  if (offset < index_bytes_) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), index_bytes_ - offset));
    index_.insert(index_.end(), chunk.begin(), chunk.begin() + static_cast<ptrdiff_t>(n));
    chunk = chunk.subspan(n);
    if (index_.size() == index_bytes_) MS_RETURN_IF_ERROR(IndexDone());
  }
  return AddBlockBytes(chunk);
}

// Checks every entry before any block is applied: a corrupt index must not write outside the
// work image or pass its checksum by luck of the order.
Status DeltaFiller::IndexDone() {
  const uint64_t bs = delta_.block_bytes, blocks = (delta_.region_bytes + bs - 1) / bs;
  uint64_t stored = 0, previous = 0;
  for (uint64_t i = 0; i < index_bytes_ / 8; ++i) {
    uint64_t e = 0;
    std::memcpy(&e, index_.data() + i * 8, 8);
    if (i >= delta_.entry_count) {
      if (e != 0)
        return Fail(Code::kCorruption, fmt::format("delta index padding entry {} is not zero", i));
      continue;
    }
    const uint64_t b = e & ~kDeltaZeroBlock;
    if (b >= blocks || (i > 0 && b <= previous)) {
      return Fail(Code::kCorruption,
                  fmt::format("delta index entry {} names block {} (after block {}, of {} blocks): "
                              "entries must be ascending block numbers",
                              i, b, previous, blocks));
    }
    previous = b;
    if (e & kDeltaZeroBlock) {
      MS_RETURN_IF_ERROR(ZeroBlock(region_, b));
      continue;
    }
    blocks_.push_back(b);
    stored += std::min(bs, delta_.region_bytes - b * bs);
  }
  if (stored != delta_.stored_bytes) {
    return Fail(Code::kCorruption,
                fmt::format("delta index implies {} stored bytes, header says {}", stored,
                            delta_.stored_bytes));
  }
  index_.clear();
  index_.shrink_to_fit();
  return Ok();
}

Status DeltaFiller::AddBlockBytes(std::span<const std::byte> bytes) {
  const ms_region_header* h = region_.header();
  const uint64_t bs = h->block_bytes;
  while (!bytes.empty()) {
    if (next_ >= blocks_.size())
      return Fail(Code::kCorruption, "delta holds more data than its index names");
    const uint64_t b = blocks_[next_];
    const uint64_t size = std::min(bs, delta_.region_bytes - b * bs);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), size - within_));
    MS_RETURN_IF_ERROR(WriteRegion(region_, bytes.data(), n, h->work_offset + b * bs + within_));
    bytes = bytes.subspan(n);
    within_ += n;
    if (within_ == size) {
      SetTags(region_, b, gen_, MS_REGION_TAG_IN_WORK);
      ++next_;
      within_ = 0;
    }
  }
  return Ok();
}

Status DeltaFiller::Finish() const {
  if (index_.size() != 0 || next_ != blocks_.size()) {
    return Fail(Code::kCorruption,
                fmt::format("delta ends after {} of its {} stored blocks", next_, blocks_.size()));
  }
  return Ok();
}

// The region's generations say "committed, pinned and durable at gen" (relaxed: unpublished).
void SetRestoredGenerations(RegionFile& region, uint64_t gen) {
  ms_region_header* h = region.header();
  for (uint64_t* field :
       {&h->committing_gen, &h->committed_gen, &h->pin_gen, &h->durable_gen, &h->restored_gen}) {
    std::atomic_ref(*field).store(gen, std::memory_order_relaxed);
  }
}

}  // namespace modelswap::snapshot
