// The zstd chunk store on the volume (chunk_store.h): put through a temp and a no-replace
// rename, get with every check before and after decompressing.
#include "sidecar/chunk/chunk_store.h"

#include "sidecar/chunk/chunker.h"

#include <unistd.h>
#include <zstd.h>

#include <memory>

#include "sidecar/chunk/zstd_context.h"

namespace modelswap::chunk {
namespace {

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

std::string FanOutRel(const ChunkHash& hash) {
  return std::string(kChunksDir) + "/" + ToHex(hash).substr(0, 2);
}

bool IsHex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::unexpected<Error> Corrupt(const ChunkHash& hash, const std::string& what) {
  return Fail(Code::kCorruption, "chunk " + ToHex(hash) + ": " + what);
}

}  // namespace

// One context per thread, reused: creating one per chunk costs more than compressing 64 KiB.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}

std::string ChunkRel(const ChunkHash& hash) {
  return FanOutRel(hash) + "/" + ToHex(hash);
}

uint64_t MaxStoredBytes(uint64_t length) {
  return ZSTD_COMPRESSBOUND(length);
}

Result<bool> ChunkStore::Has(const ChunkHash& hash) {
  auto fd = env_->OpenBeneath(root_, ChunkRel(hash), OpenMode::kRead);
  if (!fd && fd.error().code() == Code::kNotFound) return false;
  if (!fd) return Fail(fd.error());
  env_->Close(*fd);
  return true;
}

Result<PutResult> ChunkStore::Put(const ChunkHash& hash, std::span<const std::byte> content,
                                  int zstd_level) {
  if (content.empty() || content.size() > kMaxChunkBytes) {
    return Fail(Code::kInvalidArgument, "chunk " + ToHex(hash) + ": " +
                                            std::to_string(content.size()) +
                                            " bytes (1..16 MiB allowed)");
  }
  if (zstd_level < 1 || zstd_level > 19) {
    return Fail(Code::kInvalidArgument, "zstd level " + std::to_string(zstd_level) + " not 1..19");
  }
  const std::string rel = ChunkRel(hash);
  MS_ASSIGN_OR_RETURN(std::optional<PutResult> existing, Existing(rel));
  if (existing) return *existing;
  if (Sha256(content) != hash) {
    return Fail(Code::kInvalidArgument, "chunk " + ToHex(hash) + ": content has another SHA-256");
  }
  // Reused per thread: a fresh buffer of ~max_bytes per chunk costs an mmap, page faults and an
  // munmap each time (glibc serves allocations over 128 KiB with mmap).
  thread_local std::vector<std::byte> frame;
  if (frame.size() < MaxStoredBytes(content.size())) frame.resize(MaxStoredBytes(content.size()));
  ZSTD_CCtx* cctx = ThreadCCtx();
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);  // Get checks it before decoding
  size_t n = ZSTD_compress2(cctx, frame.data(), frame.size(), content.data(), content.size());
  if (ZSTD_isError(n)) {
    return Fail(Code::kInternal, "zstd compress: " + std::string(ZSTD_getErrorName(n)));
  }
  return StoreFrame(rel, std::span(frame).first(n));
}

Result<std::optional<PutResult>> ChunkStore::Existing(const std::string& rel) {
  auto fd = env_->OpenBeneath(root_, rel, OpenMode::kRead);
  if (!fd && fd.error().code() == Code::kNotFound) return std::nullopt;
  if (!fd) return Fail(fd.error());
  auto info = env_->StatFd(*fd);
  env_->Close(*fd);
  if (!info) return Fail(info.error());
  return PutResult{false, static_cast<uint32_t>(info->size)};
}

Result<PutResult> ChunkStore::StoreFrame(const std::string& rel, std::span<const std::byte> frame) {
  const size_t slash = rel.rfind('/');
  const std::string dir = rel.substr(0, slash);
  const std::string tmp_rel = dir + "/.tmp-" + rel.substr(slash + 1) + "-" +
                              std::to_string(::getpid()) + "-" +
                              std::to_string(env_->NowUnixNanos());
  auto fd = env_->OpenBeneath(root_, tmp_rel, OpenMode::kCreateNew);
  if (!fd && fd.error().code() == Code::kNotFound) {
    // The fan-out directory is missing (a symlink in the way is kPermissionDenied instead).
    MS_RETURN_IF_ERROR(env_->CreateDirs(JoinPath(root_, dir)));
    fd = env_->OpenBeneath(root_, tmp_rel, OpenMode::kCreateNew);
  }
  if (!fd) return Fail(fd.error());
  Status st = env_->PWrite(*fd, frame, 0);
  if (st && !options_.defer_sync) st = env_->Fsync(*fd);
  env_->Close(*fd);
  const std::string tmp = JoinPath(root_, tmp_rel);
  if (st) st = env_->RenameNoReplace(tmp, JoinPath(root_, rel));
  const auto n = static_cast<uint32_t>(frame.size());
  if (!st) {
    (void)env_->Remove(tmp);
    if (st.error().code() != Code::kAlreadyExists) return Fail(st.error());
    return PutResult{false, n};  // another writer won the race
  }
  if (options_.defer_sync) {
    std::lock_guard lock(unsynced_->mu);
    unsynced_->files.push_back(rel);
    unsynced_->dirs.insert(dir);
  } else {
    MS_RETURN_IF_ERROR(env_->FsyncDir(JoinPath(root_, dir)));
  }
  return PutResult{true, n};
}

Status ChunkStore::Sync() {
  std::vector<std::string> files;
  std::set<std::string> dirs;
  {
    std::lock_guard lock(unsynced_->mu);
    files.swap(unsynced_->files);
    dirs.swap(unsynced_->dirs);
  }
  // On failure the rest stay listed, so a retried Sync covers them.
  auto keep = [&](size_t from) {
    std::lock_guard lock(unsynced_->mu);
    unsynced_->files.insert(unsynced_->files.end(), files.begin() + static_cast<ptrdiff_t>(from),
                            files.end());
    unsynced_->dirs.insert(dirs.begin(), dirs.end());
  };
  if (files.empty() && dirs.empty()) return Ok();
  // One syncfs where the file system commits everything with it (ext4, XFS, btrfs, tmpfs):
  // thousands of per-file fsyncs were most of a chunked write's time on a local disk
  // (bench/chunk/chunk_bench.cc, Writer). Elsewhere (blobfuse, NFS) file by file, as before.
  if (Status st = env_->SyncFilesystem(root_); st) {
    return Ok();
  } else if (st.error().code() != Code::kNotSupported) {
    keep(0);
    return Fail(st.error().Context("chunk store sync"));
  }
  for (size_t i = 0; i < files.size(); ++i) {
    auto fd = env_->OpenBeneath(root_, files[i], OpenMode::kRead);
    Status st = fd ? env_->Fsync(*fd) : Status(Fail(fd.error()));
    if (fd) env_->Close(*fd);
    if (!st) {
      keep(i);
      return Fail(st.error().Context("chunk store sync"));
    }
  }
  for (const std::string& dir : dirs) {
    if (Status st = env_->FsyncDir(JoinPath(root_, dir)); !st) {
      keep(files.size());
      return Fail(st.error().Context("chunk store sync"));
    }
  }
  return Ok();
}

Status ChunkStore::Get(const ChunkHash& hash, std::span<std::byte> out) {
  if (out.empty() || out.size() > kMaxChunkBytes) {
    return Fail(Code::kInvalidArgument, "chunk " + ToHex(hash) + ": length " +
                                            std::to_string(out.size()) + " not 1..16 MiB");
  }
  MS_ASSIGN_OR_RETURN(std::span<const std::byte> frame,
                      LoadFrame(ChunkRel(hash), out.size(), "chunk " + ToHex(hash)));
  ZSTD_DCtx* dctx = ThreadDCtx();
  // Clears whatever a failed GetDelta may have left referenced (a prefix, windowLogMax).
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
  size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) return Corrupt(hash, "zstd: " + std::string(ZSTD_getErrorName(n)));
  if (n != out.size()) return Corrupt(hash, "decompressed to " + std::to_string(n) + " bytes");
  if (Sha256(out) != hash) return Corrupt(hash, "content does not match its SHA-256");
  return Ok();
}

Result<std::span<const std::byte>> ChunkStore::LoadFrame(const std::string& rel, size_t length,
                                                         const std::string& who) {
  auto corrupt = [&](const std::string& what) {
    return Fail(Code::kCorruption, who + ": " + what);
  };
  MS_ASSIGN_OR_RETURN(int fd, env_->OpenBeneath(root_, rel, OpenMode::kRead));
  auto info = env_->StatFd(fd);
  if (!info) {
    env_->Close(fd);
    return Fail(info.error());
  }
  // The cap comes from the length the caller expects, never from the file: a huge or hostile
  // file costs no more memory than an honest one.
  const uint64_t cap = MaxStoredBytes(length);
  if (info->size == 0 || info->size > cap) {
    env_->Close(fd);
    return corrupt("stored file is " + std::to_string(info->size) +
                   " bytes, impossible for a chunk of " + std::to_string(length) +
                   " (partly copied or not a chunk)");
  }
  thread_local std::vector<std::byte> buffer;  // reused, as in Put
  if (buffer.size() < info->size) buffer.resize(info->size);
  std::span<std::byte> frame = std::span(buffer).first(info->size);
  uint64_t off = 0;
  while (off < frame.size()) {
    auto n = env_->PRead(fd, frame.subspan(off), off);
    if (!n || *n == 0) {
      env_->Close(fd);
      if (!n) return Fail(n.error());
      return corrupt("stored file shrank while being read");
    }
    off += *n;
  }
  env_->Close(fd);
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return corrupt("not a zstd frame with a content size (truncated or damaged)");
  }
  if (declared != length) {
    return corrupt("frame holds " + std::to_string(declared) + " bytes, the chunk is " +
                   std::to_string(length));
  }
  size_t frame_bytes = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_bytes) || frame_bytes != frame.size()) {
    return corrupt("stored file is not exactly one zstd frame (truncated or padded)");
  }
  return std::span<const std::byte>(frame);
}

Result<std::vector<ChunkInfo>> ChunkStore::List() {
  std::vector<ChunkInfo> out;
  const std::string base = JoinPath(root_, kChunksDir);
  auto dirs = env_->ListDir(base);
  if (!dirs && dirs.error().code() == Code::kNotFound) return out;
  if (!dirs) return Fail(dirs.error());
  for (const std::string& d : *dirs) {
    if (d.size() != 2 || !IsHex(d)) continue;  // .writers, .gc, anything not ours
    MS_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->ListDir(JoinPath(base, d)));
    for (const std::string& name : names) {
      // <64 hex> (whole) or <64 hex>.<64 hex> (delta, DeltaChunkRel), in its own fan-out dir.
      const bool delta = name.size() == 129 && name[64] == '.';
      if ((name.size() != 64 && !delta) || name.compare(0, 2, d) != 0) continue;
      ChunkInfo c;
      auto hash = ParseChunkHash(std::string_view(name).substr(0, 64));
      if (!hash || !IsHex(name.substr(0, 64))) continue;
      c.hash = *hash;
      if (delta) {
        auto base_hash = ParseChunkHash(std::string_view(name).substr(65));
        if (!base_hash || !IsHex(name.substr(65))) continue;
        c.delta = true;
        c.base = *base_hash;
      }
      auto info = env_->Stat(JoinPath(JoinPath(base, d), name));
      if (!info && info.error().code() == Code::kNotFound) continue;  // removed meanwhile
      if (!info) return Fail(info.error());
      c.stored_bytes = info->size;
      c.mtime_ns = info->mtime_ns;
      out.push_back(c);
    }
  }
  return out;
}

Result<std::vector<std::pair<std::string, int64_t>>> ChunkStore::ListTemps() {
  std::vector<std::pair<std::string, int64_t>> out;
  const std::string base = JoinPath(root_, kChunksDir);
  auto dirs = env_->ListDir(base);
  if (!dirs && dirs.error().code() == Code::kNotFound) return out;
  if (!dirs) return Fail(dirs.error());
  for (const std::string& d : *dirs) {
    if (d.size() != 2 || !IsHex(d)) continue;
    MS_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->ListDir(JoinPath(base, d)));
    for (const std::string& name : names) {
      if (!name.starts_with(".tmp-")) continue;
      std::string rel = std::string(kChunksDir) + "/" + d + "/" + name;
      auto info = env_->Stat(JoinPath(root_, rel));
      if (info) out.emplace_back(rel, info->mtime_ns);
    }
  }
  return out;
}

namespace {
// Removes root/rel after OpenBeneath showed it is a regular file reached through no symlink.
Status RemoveBeneath(Env* env, const std::string& root, const std::string& rel) {
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, rel, OpenMode::kRead));
  env->Close(fd);
  return env->Remove(JoinPath(root, rel));
}
}  // namespace

Status ChunkStore::Remove(const ChunkHash& hash) {
  return RemoveBeneath(env_, root_, ChunkRel(hash));
}

Status ChunkStore::RemoveDelta(const ChunkHash& hash, const ChunkHash& base) {
  return RemoveBeneath(env_, root_, DeltaChunkRel(hash, base));
}

Status ChunkStore::RemoveTemp(const std::string& rel) {
  std::string_view prefix = kChunksDir;
  if (!rel.starts_with(std::string(prefix) + "/") || rel.find("/.tmp-") == std::string::npos ||
      rel.find("..") != std::string::npos) {
    return Fail(Code::kInvalidArgument, "not a chunk temp file: " + rel);
  }
  return RemoveBeneath(env_, root_, rel);
}

}  // namespace modelswap::chunk
