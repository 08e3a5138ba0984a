// WriteSnapshot: stream the pinned versions of a region's blocks into a sparse file.
#include "sidecar/snapshot/snapshot_writer.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstring>
#include <memory>
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

struct DataResult {
  uint64_t checksum = 0;
  uint64_t stored_bytes = 0;
};

// Writes every non-zero block at the pinned generation and hashes the whole image; then checks
// that no copied version moved while we read it.
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
  for (uint64_t b = 0; b < blocks; ++b) {
    if (view.Tag(b, used[b].slot) != used[b].tag) {
      return Fail(Code::kInternal,
                  fmt::format("region {}: block {} changed while it was copied at pinned "
                              "generation {}: the app broke the commit protocol",
                              view.name(), b, pin));
    }
  }
  out.checksum = hash.Digest();
  return out;
}

Result<SnapshotWriteResult> WriteFile(Env* env, int fd, const std::string& temp,
                                      const RegionView& view, uint64_t pin) {
  SnapshotWriteResult r;
  r.generation = pin;
  r.file_bytes = kSnapshotHeaderBytes + view.region_bytes();
  // Sets the size first so every block not written stays a hole.
  MS_RETURN_IF_ERROR(env->Truncate(fd, r.file_bytes));
  MS_ASSIGN_OR_RETURN(DataResult data, WriteData(env, fd, view, pin));
  SnapshotHeader h;
  h.name = view.name();
  h.block_bytes = view.block_bytes();
  h.region_bytes = view.region_bytes();
  h.generation = pin;
  h.created_unix_ns = static_cast<uint64_t>(env->NowUnixNanos());
  h.data_checksum = data.checksum;
  h.stored_bytes = data.stored_bytes;
  const HeaderBytes header = EncodeSnapshotHeader(h);
  MS_RETURN_IF_ERROR(env->PWrite(fd, header, 0));
  MS_RETURN_IF_ERROR(env->Fsync(fd));
  r.stored_bytes = data.stored_bytes;
  r.checksum = data.checksum;
  return r;
}

}  // namespace

Result<SnapshotWriteResult> WriteSnapshot(Env* env, const std::string& region_dir,
                                          const RegionView& view, uint64_t pin) {
  const int64_t start = env->NowMonotonicNanos();
  const std::string name = SnapshotFileName(pin);
  const std::string temp = JoinPath(region_dir, std::string(kSnapshotTempPrefix) + name);
  const std::string path = JoinPath(region_dir, name);
  MS_ASSIGN_OR_RETURN(const int fd, env->Open(temp, OpenMode::kTruncate));
  Result<SnapshotWriteResult> r = WriteFile(env, fd, temp, view, pin);
  env->Close(fd);
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
