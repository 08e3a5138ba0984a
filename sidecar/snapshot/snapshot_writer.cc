// WriteSnapshot: stream the pinned versions of a region's blocks into a sparse file.
#include "sidecar/snapshot/snapshot_writer.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "common/checksum.h"
#include "sidecar/snapshot/snapshot_format.h"

namespace modelswap::snapshot {
namespace {

// Longest single write: big enough to reach the disk's bandwidth, small enough to keep the
// kernel's dirty-page accounting smooth.
constexpr size_t kMaxRunBytes = size_t{16} << 20;

// Zeros to hash in place of holes (static storage: zero-initialised, costs no binary size).
alignas(64) std::byte g_zeros[MS_REGION_MAX_BLOCK_BYTES];

bool IsZero(const std::byte* p, size_t n) {
  return p[0] == std::byte{0} && std::memcmp(p, p + 1, n - 1) == 0;
}

// Coalesces consecutive (memory- and file-contiguous) pieces into one PWrite.
class RunWriter {
 public:
  RunWriter(Env* env, int fd) : env_(env), fd_(fd) {}

  Status Add(const std::byte* data, uint64_t file_offset, size_t n) {
    if (len_ > 0 && data == start_ + len_ && file_offset == offset_ + len_ &&
        len_ + n <= kMaxRunBytes) {
      len_ += n;
      return Ok();
    }
    MS_RETURN_IF_ERROR(Flush());
    start_ = data;
    offset_ = file_offset;
    len_ = n;
    return Ok();
  }

  Status Flush() {
    if (len_ == 0) return Ok();
    MS_RETURN_IF_ERROR(env_->PWrite(fd_, std::span(start_, len_), offset_));
    len_ = 0;
    return Ok();
  }

 private:
  Env* env_;
  int fd_;
  const std::byte* start_ = nullptr;
  uint64_t offset_ = 0;
  size_t len_ = 0;
};

// Checks that no copied version moved while we read it (it cannot, unless the app broke the
// protocol: the snapshot is then discarded).
Status CheckUnmoved(const RegionView& view, uint64_t pin,
                    const std::vector<RegionView::BlockVersion>& used) {
  for (uint64_t b = 0; b < used.size(); ++b) {
    if (view.Tag(b, used[b].slot) != used[b].tag) {
      return Fail(Code::kInternal,
                  fmt::format("region {}: block {} changed while it was copied at pinned "
                              "generation {}: the app broke the commit protocol",
                              view.name(), b, pin));
    }
  }
  return Ok();
}

struct DataResult {
  uint64_t checksum = 0;
  uint64_t stored_bytes = 0;
};

// A full snapshot: writes every non-zero block at the pinned generation and hashes the whole
// image.
Result<DataResult> WriteData(Env* env, int fd, const RegionView& view, uint64_t pin) {
  const uint64_t blocks = view.block_count(), bs = view.block_bytes();
  const uint64_t size = view.region_bytes();
  std::vector<RegionView::BlockVersion> used(blocks);
  Xxh3Stream hash;
  RunWriter runs(env, fd);
  DataResult out;
  // Blocks still in the work image (a restored region) are copied out first, since the app may
  // write them any time; consecutive ones stay contiguous here, so RunWriter still coalesces.
  const size_t bounce_bytes = std::max<size_t>(kMaxRunBytes / 16, bs);
  auto bounce = std::make_unique_for_overwrite<std::byte[]>(bounce_bytes);
  size_t bounce_used = 0;
  for (uint64_t b = 0; b < blocks; ++b) {
    MS_ASSIGN_OR_RETURN(used[b], view.PinnedVersion(b, pin));
    const size_t n = static_cast<size_t>(std::min(bs, size - b * bs));
    const std::byte* data = view.BlockData(b, used[b].slot);
    if (used[b].in_work) {
      if (bounce_used + bs > bounce_bytes) {
        MS_RETURN_IF_ERROR(runs.Flush());  // the pending run may point into the bounce buffer
        bounce_used = 0;
      }
      data = view.ReadInWork(b, bounce.get() + bounce_used);
      if (data == bounce.get() + bounce_used) bounce_used += bs;
    }
    // Tag 0: never written since creation; do not even read it (that would fault in pages).
    if (used[b].tag == 0 || IsZero(data, n)) {
      hash.Update(std::span(g_zeros, n));
      continue;
    }
    hash.Update(std::span(data, n));
    MS_RETURN_IF_ERROR(runs.Add(data, kSnapshotHeaderBytes + b * bs, n));
    out.stored_bytes += n;
  }
  MS_RETURN_IF_ERROR(runs.Flush());
  MS_RETURN_IF_ERROR(CheckUnmoved(view, pin, used));
  out.checksum = hash.Digest();
  return out;
}

// A delta's plan: the blocks whose pinned version is newer than the base, in order.
struct DeltaPlan {
  std::vector<uint64_t> entries;  // block numbers, kDeltaZeroBlock set for blocks now zero
  std::vector<RegionView::BlockVersion> used;
  uint64_t stored_bytes = 0;
};

// nullopt when a delta is not worth it (or not possible): the caller writes a full snapshot.
Result<std::optional<DeltaPlan>> PlanDelta(const RegionView& view, uint64_t pin,
                                           const DeltaBase& base) {
  const uint64_t blocks = view.block_count(), bs = view.block_bytes();
  DeltaPlan plan;
  plan.used.resize(blocks);
  for (uint64_t b = 0; b < blocks; ++b) {
    MS_ASSIGN_OR_RETURN(plan.used[b], view.PinnedVersion(b, pin));
    // A tag <= the base's generation: no commit after the base wrote this block.
    if (plan.used[b].tag <= base.generation) continue;
    // Only a region restored after the base has blocks in work; it gets a full snapshot.
    if (plan.used[b].in_work) return std::nullopt;
    const size_t n = static_cast<size_t>(std::min(bs, view.region_bytes() - b * bs));
    if (IsZero(view.BlockData(b, plan.used[b].slot), n)) {
      plan.entries.push_back(b | kDeltaZeroBlock);
      continue;
    }
    plan.entries.push_back(b);
    plan.stored_bytes += n;
    if (plan.stored_bytes > base.max_stored_bytes) return std::nullopt;
  }
  return plan;
}

// Writes the index and the changed blocks, packed, and hashes both.
Result<DataResult> WriteDelta(Env* env, int fd, const RegionView& view, uint64_t pin,
                              const DeltaPlan& plan) {
  const uint64_t bs = view.block_bytes();
  std::vector<uint64_t> index(DeltaIndexBytes(plan.entries.size()) / 8, 0);
  std::copy(plan.entries.begin(), plan.entries.end(), index.begin());
  const auto index_bytes = std::as_bytes(std::span(index));
  Xxh3Stream hash;
  hash.Update(index_bytes);
  MS_RETURN_IF_ERROR(env->PWrite(fd, index_bytes, kSnapshotHeaderBytes));
  RunWriter runs(env, fd);
  uint64_t at = kSnapshotHeaderBytes + index_bytes.size();
  for (const uint64_t e : plan.entries) {
    if (e & kDeltaZeroBlock) continue;
    const size_t n = static_cast<size_t>(std::min(bs, view.region_bytes() - e * bs));
    const std::byte* data = view.BlockData(e, plan.used[e].slot);
    hash.Update(std::span(data, n));
    MS_RETURN_IF_ERROR(runs.Add(data, at, n));
    at += n;
  }
  MS_RETURN_IF_ERROR(runs.Flush());
  MS_RETURN_IF_ERROR(CheckUnmoved(view, pin, plan.used));
  return DataResult{hash.Digest(), plan.stored_bytes};
}

Result<SnapshotWriteResult> WriteFile(Env* env, int fd, const RegionView& view, uint64_t pin,
                                      const DeltaBase* base) {
  std::optional<DeltaPlan> plan;
  if (base != nullptr) {
    MS_ASSIGN_OR_RETURN(plan, PlanDelta(view, pin, *base));
  }
  SnapshotHeader h;
  h.name = view.name();
  h.block_bytes = view.block_bytes();
  h.region_bytes = view.region_bytes();
  h.generation = pin;
  DataResult data;
  if (plan) {
    h.kind = SnapshotKind::kDelta;
    h.parent_generation = base->generation;
    h.parent_data_checksum = base->data_checksum;
    h.entry_count = plan->entries.size();
    MS_ASSIGN_OR_RETURN(data, WriteDelta(env, fd, view, pin, *plan));
  } else {
    // Sets the size first so every block not written stays a hole.
    MS_RETURN_IF_ERROR(env->Truncate(fd, kSnapshotHeaderBytes + view.region_bytes()));
    MS_ASSIGN_OR_RETURN(data, WriteData(env, fd, view, pin));
  }
  h.created_unix_ns = static_cast<uint64_t>(env->NowUnixNanos());
  h.data_checksum = data.checksum;
  h.stored_bytes = data.stored_bytes;
  const HeaderBytes header = EncodeSnapshotHeader(h);
  MS_RETURN_IF_ERROR(env->PWrite(fd, header, 0));
  MS_RETURN_IF_ERROR(env->Fsync(fd));
  SnapshotWriteResult r;
  r.generation = pin;
  r.kind = h.kind;
  r.parent_generation = h.parent_generation;
  r.file_bytes = kSnapshotHeaderBytes + SnapshotDataBytes(h);
  r.stored_bytes = data.stored_bytes;
  r.checksum = data.checksum;
  return r;
}

}  // namespace

Result<SnapshotWriteResult> WriteSnapshot(Env* env, const std::string& region_dir,
                                          const RegionView& view, uint64_t pin,
                                          const DeltaBase* base) {
  const int64_t start = env->NowMonotonicNanos();
  const std::string name = SnapshotFileName(pin);
  const std::string temp = JoinPath(region_dir, std::string(kSnapshotTempPrefix) + name);
  const std::string path = JoinPath(region_dir, name);
  MS_ASSIGN_OR_RETURN(const int fd, env->Open(temp, OpenMode::kTruncate));
  Result<SnapshotWriteResult> r = WriteFile(env, fd, view, pin, base);
  env->Close(fd);
  // After the copy: a region truncated under the host's mapping read as zeros instead of killing
  // it (RegionFile::damaged); such a copy is not the app's state and must never replace one.
  if (r && view.file().damaged()) {
    r = Fail(Code::kIOError,
             "region " + view.file().path() + " truncated under the host's mapping");
  }
  Status done = r ? env->Rename(temp, path) : Status(Fail(r.error()));
  if (!done) {
    (void)env->Remove(temp);  // best effort; leftovers are removed at the host's next start
    return Fail(done.error().Context("snapshot " + path));
  }
  MS_RETURN_IF_ERROR(env->FsyncDir(region_dir));
  r->path = path;
  r->duration_ns = env->NowMonotonicNanos() - start;
  return r;
}

}  // namespace modelswap::snapshot
