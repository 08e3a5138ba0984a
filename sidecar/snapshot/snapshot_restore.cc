// RestoreRegion and VerifySnapshotFile: read a snapshot in chunks, hash it, and (for restore)
// copy its non-zero blocks into a region that is linked into place only once it checks out. A
// delta is restored by applying its chain: the full snapshot it ends at, then each delta in turn.
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
#include <optional>

#include "common/checksum.h"
#include "sidecar/client/region/region_file.h"
#include "sidecar/snapshot/chunk_pipeline.h"
#include "sidecar/snapshot/region_filler.h"

namespace modelswap::snapshot {
namespace {

// The unit of reading, hashing and copying: a multiple of every block size, large enough that
// the reader's preads keep a cold disk streaming, small enough that the pipeline's 4 chunks stay
// in the shared cache while the copier and the hasher read them.
constexpr size_t kChunkBytes = 4 * size_t{MS_REGION_MAX_BLOCK_BYTES};

using ChunkSink = std::function<Status(uint64_t offset, std::span<const std::byte> chunk)>;

Result<SnapshotHeader> ReadHeader(Env* env, int fd, const std::string& path,
                                  const std::string& name, uint64_t generation) {
  MS_ASSIGN_OR_RETURN(const FileInfo info, env->Stat(path));
  HeaderBytes bytes{};
  const size_t want = static_cast<size_t>(std::min<uint64_t>(info.size, bytes.size()));
  MS_RETURN_IF_ERROR(ReadFullAt(env, fd, std::span(bytes).first(want), 0, path));
  return CheckSnapshotHeader(std::span(bytes).first(want), name, generation, info.size);
}

// One file of a restore chain, open.
struct ChainFile {
  std::string path;
  int fd = -1;
  SnapshotHeader header;
};

// Streams the data through sink and checks the data checksum. Reading and hashing run on two
// more threads (ChunkPipeline), overlapping the sink's copying.
Status ReadData(Env* env, int fd, const SnapshotHeader& h, const std::string& path,
                const ChunkSink& sink) {
  if (Status s = env->AdviseSequential(fd); !s)
    spdlog::debug("snapshot {}: read-ahead hint refused: {}", path, s.error().ToString());
  ChunkPipeline pipeline(env, fd, path, kSnapshotHeaderBytes, SnapshotDataBytes(h), kChunkBytes);
  for (uint64_t off = 0;;) {
    MS_ASSIGN_OR_RETURN(const std::span<const std::byte> chunk, pipeline.Next());
    if (chunk.empty()) break;
    if (sink) MS_RETURN_IF_ERROR(sink(off, chunk));
    pipeline.Release();
    off += chunk.size();
  }
  MS_ASSIGN_OR_RETURN(const uint64_t actual, pipeline.Finish());
  if (actual != h.data_checksum) {
    return Fail(Code::kCorruption,
                fmt::format("snapshot {}: data checksum mismatch: header says {}, data hashes "
                            "to {}",
                            path, FormatChecksum(h.data_checksum), FormatChecksum(actual)));
  }
  return Ok();
}

// Closes the chain's files however the restore ends.
struct Chain {
  Env* env;
  std::vector<ChainFile> files;  // the full snapshot first, the target last
  ~Chain() {
    for (const ChainFile& f : files)
      env->Close(f.fd);
  }
};

// Opens `gen` and, while it is a delta, its parents, checking each link: the parent must exist
// and carry the generation, geometry and data checksum the child names.
Status OpenChain(Env* env, const std::string& dir, const std::string& name, uint64_t gen,
                 Chain& chain) {
  for (;;) {
    ChainFile f;
    f.path = JoinPath(dir, SnapshotFileName(gen));
    MS_ASSIGN_OR_RETURN(f.fd, env->Open(f.path, OpenMode::kRead));
    Result<SnapshotHeader> h = ReadHeader(env, f.fd, f.path, name, gen);
    if (!h) {
      env->Close(f.fd);
      return Fail(h.error());
    }
    f.header = std::move(*h);
    if (!chain.files.empty()) {
      const SnapshotHeader& child = chain.files.back().header;
      if (f.header.data_checksum != child.parent_data_checksum ||
          f.header.block_bytes != child.block_bytes ||
          f.header.region_bytes != child.region_bytes) {
        const std::string child_path = chain.files.back().path;
        env->Close(f.fd);
        return Fail(Code::kCorruption,
                    fmt::format("snapshot {}: its parent {} is not the snapshot it was written "
                                "against (data checksum {} vs {}, or another geometry)",
                                child_path, f.path, FormatChecksum(f.header.data_checksum),
                                FormatChecksum(child.parent_data_checksum)));
      }
    }
    const bool delta = f.header.kind == SnapshotKind::kDelta;
    gen = f.header.parent_generation;
    chain.files.push_back(std::move(f));
    if (!delta) break;
  }
  std::reverse(chain.files.begin(), chain.files.end());
  return Ok();
}

// Streams every file of the chain into the region (full image, then each delta), checking each
// file's data checksum on the way.
Status FillRegion(Env* env, const Chain& chain, uint64_t gen, RegionFile& region,
                  bool* sink_failed) {
  for (const ChainFile& f : chain.files) {
    if (f.header.kind == SnapshotKind::kFull) {
      MS_RETURN_IF_ERROR(ReadData(env, f.fd, f.header, f.path, [&](uint64_t off, auto chunk) {
        Status fed = FillFromFull(region, gen, off, chunk);
        *sink_failed = !fed;
        return fed;
      }));
      continue;
    }
    DeltaFiller delta(region, f.header, gen);
    MS_RETURN_IF_ERROR(ReadData(env, f.fd, f.header, f.path, [&](uint64_t off, auto chunk) {
      Status fed = delta.Add(off, chunk);
      // A write error is the shm dir's fault (full emptyDir), not the file's.
      *sink_failed = !fed && fed.error().code() != Code::kCorruption;
      return fed;
    }));
    if (Status done = delta.Finish(); !done)
      return Fail(done.error().Context("snapshot " + f.path));
  }
  SetRestoredGenerations(region, gen);
  return Ok();
}

// Outcome of one candidate: restored, skipped (candidate_error set), or a hard failure.
Status RestoreFrom(Env* env, const std::string& dir, const std::string& region_path,
                   const std::string& name, uint64_t gen, bool* candidate_error,
                   RestoreResult* result) {
  *candidate_error = true;
  Chain chain{env, {}};
  MS_RETURN_IF_ERROR(OpenChain(env, dir, name, gen, chain));
  *candidate_error = false;  // from here on only the fill's errors can be the files' fault
  bool sink_failed = false;
  auto fill = [&](RegionFile& region) -> Status {
    Status s = FillRegion(env, chain, gen, region, &sink_failed);
    *candidate_error = !s && !sink_failed;
    return s;
  };
  const SnapshotHeader& target = chain.files.back().header;
  MS_ASSIGN_OR_RETURN(const RegionFile region,
                      RegionFile::Create(region_path, RegionFile::Lock::kNone,
                                         {target.region_bytes, target.block_bytes}, fill));
  result->region_bytes = target.region_bytes;
  result->chain_length = chain.files.size();
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
    Status s = RestoreFrom(env, dir, region_path, name, gen, &candidate_error, &result);
    if (s) {
      result.generation = gen;
      result.path = file;
      result.duration_ns = env->NowMonotonicNanos() - start;
      spdlog::info("snapshot restored region={} generation={} chain={} fallbacks={} file={}", name,
                   gen, result.chain_length, result.fallbacks, file);
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

Result<SnapshotHeader> ReadSnapshotHeader(Env* env, const std::string& path,
                                          const std::string& name, uint64_t generation) {
  MS_ASSIGN_OR_RETURN(const int fd, env->Open(path, OpenMode::kRead));
  Result<SnapshotHeader> h = ReadHeader(env, fd, path, name, generation);
  env->Close(fd);
  return h;
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
