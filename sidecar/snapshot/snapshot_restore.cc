// RestoreRegion and VerifySnapshotFile: read a snapshot in chunks, hash it, and (for restore)
// copy its non-zero blocks into a region that is linked into place only once it checks out.
#include "sidecar/snapshot/snapshot_restore.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>

#include "common/checksum.h"
#include "sidecar/client/region_file.h"
#include "sidecar/snapshot/background_hasher.h"

namespace modelswap::snapshot {
namespace {

// A multiple of every block size; small enough to stay in L2 between the read, the hash and the
// copies.
constexpr size_t kChunkBytes = MS_REGION_MAX_BLOCK_BYTES;

using ChunkSink = std::function<Status(uint64_t offset, std::span<const std::byte> chunk)>;

// Fills out from offset, retrying short reads; kCorruption if the file ends first.
Status ReadFull(Env* env, int fd, std::span<std::byte> out, uint64_t offset,
                const std::string& path) {
  while (!out.empty()) {
    MS_ASSIGN_OR_RETURN(const size_t n, env->PRead(fd, out, offset));
    if (n == 0) {
      return Fail(Code::kCorruption,
                  fmt::format("snapshot {}: file ends at byte {} (truncated)", path, offset));
    }
    out = out.subspan(n);
    offset += n;
  }
  return Ok();
}

Result<SnapshotHeader> ReadHeader(Env* env, int fd, const std::string& path,
                                  const std::string& name, uint64_t generation) {
  MS_ASSIGN_OR_RETURN(const FileInfo info, env->Stat(path));
  HeaderBytes bytes{};
  const size_t want = static_cast<size_t>(std::min<uint64_t>(info.size, bytes.size()));
  MS_RETURN_IF_ERROR(ReadFull(env, fd, std::span(bytes).first(want), 0, path));
  return CheckSnapshotHeader(std::span(bytes).first(want), name, generation, info.size);
}

// Streams the data through sink and checks the data checksum. The hash runs on a second thread
// (BackgroundHasher), overlapping the next chunk's read and copy.
Status ReadData(Env* env, int fd, const SnapshotHeader& h, const std::string& path,
                const ChunkSink& sink) {
  if (Status s = env->AdviseSequential(fd); !s)
    spdlog::debug("snapshot {}: read-ahead hint refused: {}", path, s.error().ToString());
  BackgroundHasher hasher(kChunkBytes);
  for (uint64_t off = 0; off < h.region_bytes; off += kChunkBytes) {
    const auto chunk = hasher.Acquire().first(
        static_cast<size_t>(std::min<uint64_t>(kChunkBytes, h.region_bytes - off)));
    MS_RETURN_IF_ERROR(ReadFull(env, fd, chunk, kSnapshotHeaderBytes + off, path));
    if (sink) MS_RETURN_IF_ERROR(sink(off, chunk));
    hasher.Submit(chunk.size());
  }
  if (const uint64_t actual = hasher.Finish(); actual != h.data_checksum) {
    return Fail(Code::kCorruption,
                fmt::format("snapshot {}: data checksum mismatch: header says {}, data hashes "
                            "to {}",
                            path, FormatChecksum(h.data_checksum), FormatChecksum(actual)));
  }
  return Ok();
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
    if (w <= 0) {
      return Fail(Code::kIOError,
                  fmt::format("write region {}: {}", region.path(), std::strerror(errno)));
    }
    data += w;
    n -= static_cast<size_t>(w);
    at += static_cast<uint64_t>(w);
  }
  return Ok();
}

// Copies the non-zero blocks of a chunk into the work image only, tagged `gen` in slot 0 and "in
// work" in slot 1 (region_layout.h: the app fills slot 0 when it first writes the block); zero
// blocks stay holes (tag 0 = all zeros), so a sparse state stays sparse in memory too.
Status CopyChunk(RegionFile& region, uint64_t gen, uint64_t off, std::span<const std::byte> chunk) {
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
    // Relaxed: the region has no name yet; linking it publishes everything to later openers.
    uint64_t* tags = region.tags() + 2 * ((off + at) / bs);
    std::atomic_ref(tags[0]).store(gen, std::memory_order_relaxed);
    std::atomic_ref(tags[1]).store(MS_REGION_TAG_IN_WORK, std::memory_order_relaxed);
  }
  return flush();
}

// The region's generations say "committed, pinned and durable at gen" (relaxed: unpublished).
void SetRestoredGenerations(RegionFile& region, uint64_t gen) {
  ms_region_header* h = region.header();
  for (uint64_t* field :
       {&h->committing_gen, &h->committed_gen, &h->pin_gen, &h->durable_gen, &h->restored_gen}) {
    std::atomic_ref(*field).store(gen, std::memory_order_relaxed);
  }
}

// Outcome of one candidate: restored, skipped (candidate_error set), or a hard failure.
Status RestoreFrom(Env* env, const std::string& file, const std::string& region_path,
                   const std::string& name, uint64_t gen, bool* candidate_error) {
  *candidate_error = true;
  MS_ASSIGN_OR_RETURN(const int fd, env->Open(file, OpenMode::kRead));
  Result<SnapshotHeader> header = ReadHeader(env, fd, file, name, gen);
  if (!header) {
    env->Close(fd);
    return Fail(header.error());
  }
  *candidate_error = false;  // from here on only the fill callback's errors are the file's fault
  auto fill = [&](RegionFile& region) -> Status {
    bool sink_failed = false;  // the shm dir's fault (full emptyDir), not the snapshot's
    Status read = ReadData(env, fd, *header, file, [&](uint64_t off, auto chunk) {
      Status s = CopyChunk(region, gen, off, chunk);
      sink_failed = !s;
      return s;
    });
    *candidate_error = !read && !sink_failed;
    MS_RETURN_IF_ERROR(read);
    SetRestoredGenerations(region, gen);
    return Ok();
  };
  Result<RegionFile> region = RegionFile::Create(region_path, RegionFile::Lock::kNone,
                                                 {header->region_bytes, header->block_bytes}, fill);
  env->Close(fd);
  if (!region) return Fail(region.error());
  return Ok();
}

}  // namespace

Result<std::vector<uint64_t>> ListSnapshotGenerations(Env* env, const std::string& region_dir) {
  Result<std::vector<std::string>> names = env->ListDir(region_dir);
  if (!names && names.error().code() == Code::kNotFound) return std::vector<uint64_t>{};
  if (!names) return Fail(names.error());
  std::vector<uint64_t> gens;
  for (const std::string& n : *names) {
    if (auto gen = ParseSnapshotFileName(n)) gens.push_back(*gen);
  }
  std::sort(gens.rbegin(), gens.rend());
  return gens;
}

Result<RestoreResult> RestoreRegion(Env* env, const std::string& snapshot_dir,
                                    const std::string& shm_dir, const std::string& name) {
  MS_RETURN_IF_ERROR(ValidateRegionName(name));
  const int64_t start = env->NowMonotonicNanos();
  const std::string dir = RegionSnapshotDir(snapshot_dir, name);
  const std::string region_path = RegionPath(shm_dir, name);
  if (env->Stat(region_path)) {
    return Fail(Code::kAlreadyExists, "region " + region_path + " exists: it has live content");
  }
  MS_ASSIGN_OR_RETURN(const std::vector<uint64_t> gens, ListSnapshotGenerations(env, dir));
  if (gens.empty()) return Fail(Code::kNotFound, "no snapshots of region " + name + " in " + dir);
  RestoreResult result;
  for (const uint64_t gen : gens) {
    const std::string file = JoinPath(dir, SnapshotFileName(gen));
    bool candidate_error = false;
    Status s = RestoreFrom(env, file, region_path, name, gen, &candidate_error);
    if (s) {
      result.generation = gen;
      result.path = file;
      MS_ASSIGN_OR_RETURN(const FileInfo info, env->Stat(file));
      result.region_bytes = info.size - kSnapshotHeaderBytes;
      result.duration_ns = env->NowMonotonicNanos() - start;
      spdlog::info("snapshot restored region={} generation={} fallbacks={} file={}", name, gen,
                   result.fallbacks, file);
      return result;
    }
    if (!candidate_error) return Fail(s.error().Context("restore region " + name));
    spdlog::warn("snapshot skipped region={} file={} error=\"{}\" (falling back to the previous)",
                 name, file, s.error().ToString());
    ++result.fallbacks;
    result.skipped.push_back(s.error().ToString());
  }
  std::string why;
  for (const std::string& s : result.skipped)
    why += (why.empty() ? "" : "; ") + s;
  return Fail(Code::kCorruption, fmt::format("region {}: none of its {} snapshots is valid: {}",
                                             name, gens.size(), why));
}

Result<SnapshotHeader> VerifySnapshotFile(Env* env, const std::string& path,
                                          const std::string& name, uint64_t generation) {
  MS_ASSIGN_OR_RETURN(const int fd, env->Open(path, OpenMode::kRead));
  Result<SnapshotHeader> h = ReadHeader(env, fd, path, name, generation);
  Status data = h ? ReadData(env, fd, *h, path, nullptr) : Status(Fail(h.error()));
  env->Close(fd);
  if (!data) return Fail(data.error());
  return h;
}

}  // namespace modelswap::snapshot
