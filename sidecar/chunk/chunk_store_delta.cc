// Delta chunks in the chunk store (chunk_store.h, DeltaChunkRel): a chunk's bytes as one zstd
// frame compressed with a whole chunk's bytes as its prefix (ZSTD_CCtx_refPrefix, what
// `zstd --patch-from` does), written and read with the same checks as whole chunks.
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <vector>

#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/chunker.h"
#include "sidecar/chunk/zstd_context.h"

namespace modelswap::chunk {
namespace {

// "chunk <H> (delta against base <B>)": every error about a delta file names both.
std::string Who(const ChunkHash& hash, const ChunkHash& base) {
  return "chunk " + ToHex(hash) + " (delta against base " + ToHex(base) + ")";
}

// The window must reach from the end of the content back to the start of the prefix, or the
// encoder cannot use the base at all (zstd --patch-from sets it the same way). At most
// 2 * kMaxChunkBytes = 32 MiB: windowLog 25, under the decoder's default limit
// (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 27), which is also the cap here.
int WindowLog(size_t base_len, size_t content_len) {
  static_assert(uint64_t{2} * kMaxChunkBytes <= uint64_t{1} << 27);
  const uint64_t span = uint64_t{base_len} + content_len;
  const int log = static_cast<int>(std::bit_width(span - 1));  // ceil(log2(span)), span >= 2
  return std::clamp(log, 17, 27);
}

Status CheckLength(const ChunkHash& hash, const ChunkHash& base, size_t n, const char* what) {
  if (n == 0 || n > kMaxChunkBytes) {
    return Fail(Code::kInvalidArgument, Who(hash, base) + ": " + what + " of " + std::to_string(n) +
                                            " bytes (1..16 MiB allowed)");
  }
  return Ok();
}

}  // namespace

std::string DeltaChunkRel(const ChunkHash& hash, const ChunkHash& base) {
  return ChunkRel(hash) + "." + ToHex(base);
}

Result<bool> ChunkStore::HasDelta(const ChunkHash& hash, const ChunkHash& base) {
  auto fd = env_->OpenBeneath(root_, DeltaChunkRel(hash, base), OpenMode::kRead);
  if (!fd && fd.error().code() == Code::kNotFound) return false;
  if (!fd) return Fail(fd.error());
  env_->Close(*fd);
  return true;
}

Result<std::optional<PutResult>> ChunkStore::PutDelta(const ChunkHash& hash,
                                                      std::span<const std::byte> content,
                                                      const ChunkHash& base_hash,
                                                      std::span<const std::byte> base_content,
                                                      int zstd_level, uint64_t max_stored) {
  MS_RETURN_IF_ERROR(CheckLength(hash, base_hash, content.size(), "content"));
  MS_RETURN_IF_ERROR(CheckLength(hash, base_hash, base_content.size(), "base"));
  if (zstd_level < 1 || zstd_level > 19) {
    return Fail(Code::kInvalidArgument, "zstd level " + std::to_string(zstd_level) + " not 1..19");
  }
  if (hash == base_hash) {
    return Fail(Code::kInvalidArgument, Who(hash, base_hash) + ": a chunk cannot be its own base");
  }
  const std::string rel = DeltaChunkRel(hash, base_hash);
  MS_ASSIGN_OR_RETURN(std::optional<PutResult> existing, Existing(rel));
  if (existing) return existing;
  if (Sha256(content) != hash) {
    return Fail(Code::kInvalidArgument, Who(hash, base_hash) + ": content has another SHA-256");
  }
  if (Sha256(base_content) != base_hash) {
    return Fail(Code::kInvalidArgument, Who(hash, base_hash) + ": base has another SHA-256");
  }
  thread_local std::vector<std::byte> frame;  // reused, as in Put
  if (frame.size() < MaxStoredBytes(content.size())) frame.resize(MaxStoredBytes(content.size()));
  ZSTD_CCtx* cctx = ThreadCCtx();
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);  // GetDelta checks it first
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, WindowLog(base_content.size(), content.size()));
  size_t n = ZSTD_CCtx_refPrefix(cctx, base_content.data(), base_content.size());
  if (!ZSTD_isError(n)) {
    n = ZSTD_compress2(cctx, frame.data(), frame.size(), content.data(), content.size());
  }
  // The prefix is single use, but the window setting is not: Put resets too, this is for
  // anyone else reusing the context.
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  if (ZSTD_isError(n)) {
    return Fail(Code::kInternal,
                Who(hash, base_hash) + ": zstd compress: " + std::string(ZSTD_getErrorName(n)));
  }
  if (n > max_stored) return std::nullopt;  // not worth it: the caller stores it whole
  MS_ASSIGN_OR_RETURN(PutResult put, StoreFrame(rel, std::span(frame).first(n)));
  return put;
}

Status ChunkStore::GetDelta(const ChunkHash& hash, const ChunkHash& base,
                            std::span<const std::byte> base_content, std::span<std::byte> out) {
  MS_RETURN_IF_ERROR(CheckLength(hash, base, out.size(), "length"));
  MS_RETURN_IF_ERROR(CheckLength(hash, base, base_content.size(), "base"));
  const std::string who = Who(hash, base);
  MS_ASSIGN_OR_RETURN(std::span<const std::byte> frame,
                      LoadFrame(DeltaChunkRel(hash, base), out.size(), who));
  ZSTD_DCtx* dctx = ThreadDCtx();
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
  // Enough for any honest delta frame (WindowLog above); a frame asking for more is refused.
  ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, WindowLog(base_content.size(), out.size()));
  size_t n = ZSTD_DCtx_refPrefix(dctx, base_content.data(), base_content.size());
  if (!ZSTD_isError(n)) {
    n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), frame.data(), frame.size());
  }
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
  if (ZSTD_isError(n)) {
    return Fail(Code::kCorruption,
                who + ": zstd: " + ZSTD_getErrorName(n) + " (damaged, or not against this base)");
  }
  if (n != out.size()) {
    return Fail(Code::kCorruption, who + ": decompressed to " + std::to_string(n) + " bytes");
  }
  if (Sha256(out) != hash) {
    return Fail(Code::kCorruption,
                who +
                    ": content does not match its SHA-256 (damaged, or the base's bytes are "
                    "not the base's)");
  }
  return Ok();
}

Status ChunkStore::GetEntry(const RecipeChunk& c, std::span<std::byte> out) {
  if (c.hole || out.size() != c.length) {
    return Fail(Code::kInvalidArgument, "chunk " + ToHex(c.hash) + ": GetEntry of a hole or " +
                                            "into " + std::to_string(out.size()) +
                                            " bytes for a chunk of " + std::to_string(c.length));
  }
  if (!c.delta) return Get(c.hash, out);
  if (c.base_length == 0 || c.base_length > kMaxChunkBytes) {
    return Fail(Code::kInvalidArgument, Who(c.hash, c.base_hash) + ": base_length " +
                                            std::to_string(c.base_length) + " not 1..16 MiB");
  }
  // A buffer of its own: Get and GetDelta use LoadFrame's, one after the other.
  thread_local std::vector<std::byte> base;
  if (base.size() < c.base_length) base.resize(c.base_length);
  std::span<std::byte> base_bytes = std::span(base).first(c.base_length);
  if (Status st = Get(c.base_hash, base_bytes); !st) {
    return Fail(st.error().Context("base of " + Who(c.hash, c.base_hash)));
  }
  return GetDelta(c.hash, c.base_hash, base_bytes, out);
}

}  // namespace modelswap::chunk
