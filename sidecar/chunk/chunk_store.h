// The content-addressed chunk store on the model volume, shared by every model and version:
//
//   <root>/.chunks/<first 2 hex>/<64 hex>   one zstd frame of the chunk's bytes, its content size
//                                           in the frame header (ZSTD_c_contentSizeFlag)
//   <root>/.chunks/<first 2 hex>/<64 hex>.<64 hex base>
//                                           a delta chunk (DeltaChunkRel): the same, compressed
//                                           with a whole chunk's bytes as prefix
//
// A chunk file is written once and never edited: Put writes <root>/.chunks/<2 hex>/.tmp-<64 hex>-
// <pid>-<ns>, fsyncs it and renames it into place without replacing (an existing chunk is kept,
// it has the same bytes by construction, and the temp is removed). The 256 fan-out directories
// keep listings short on blob storage (casync's and desync's <4 hex>/ layout, Nydus' <2 hex>/).
//
// Nothing read is trusted: blobfuse renames by copy + delete, so a reader can see a partial chunk
// file under its final name, and anyone with write access to the volume can put anything there.
// Get reads at most MaxStoredBytes(length) bytes, checks the frame's declared content size
// before decompressing into the caller's buffer (so a hostile header cannot make it allocate),
// and checks the length and SHA-256 of the result: kCorruption naming the chunk's hex otherwise.
// Every file is opened beneath root (Env::OpenBeneath): no symlink on the volume is followed.
// The Env has no directory or rename calls relative to a directory descriptor, so creating the
// fan-out directory, renaming into place and listing use plain paths; Put creates a directory
// only after OpenBeneath said it is missing (not a symlink), and Remove checks beneath first.
//
// Durability: by default Put fsyncs the chunk file and its directory before returning (one
// journal commit each: ~2 per chunk, which dominates a chunked write on a local disk). With
// Options::defer_sync Put does neither and remembers the chunk; Sync() then fsyncs every chunk
// and directory written since (by then the kernel has written most of them back, so each fsync
// is cheap), or, where one syncfs(2) commits the whole file system (Env::SyncFilesystem: ext4,
// XFS, btrfs, tmpfs; not blobfuse), makes that one call. A writer calls Sync() before it
// publishes the recipe that names the chunks.
//
// Thread safety: concurrent calls (whole or delta) from any number of threads are safe (the
// deferred list is behind a mutex), and from any number of processes (a racing Put of the same
// chunk is harmless).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunk_hash.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::chunk {

// ".chunks", relative to the volume root.
inline constexpr char kChunksDir[] = ".chunks";
// "<2 hex>/<64 hex>" beneath root: ".chunks/ab/ab12...".
[[nodiscard]] std::string ChunkRel(const ChunkHash& hash);
// The most bytes a stored chunk of `length` bytes can take (ZSTD_compressBound): Get's read cap
// and DecodeRecipe's bound on stored_length.
[[nodiscard]] uint64_t MaxStoredBytes(uint64_t length);
// ".chunks/<2 hex of hash>/<64 hex hash>.<64 hex base>" beneath root: `hash`'s bytes stored as one
// zstd frame compressed with the base chunk's bytes as its prefix (ZSTD_CCtx_refPrefix, what
// `zstd --patch-from` does). The base is always a chunk stored whole, so a delta chunk needs one
// other chunk to be read, never a chain. Both names may exist for one hash (two writers chose
// differently); each is a valid way to get the same bytes.
[[nodiscard]] std::string DeltaChunkRel(const ChunkHash& hash, const ChunkHash& base);

struct PutResult {
  bool stored = false;         // false: the chunk was there already
  uint32_t stored_length = 0;  // bytes of the chunk file
};

struct ChunkInfo {
  ChunkHash hash;
  bool delta = false;  // a delta chunk file: stored against base
  ChunkHash base;      // all zero unless delta
  uint64_t stored_bytes = 0;
  int64_t mtime_ns = 0;
};

class ChunkStore {
 public:
  struct Options {
    bool defer_sync = false;  // see "Durability" above
  };
  ChunkStore(Env* env, std::string root) : env_(env), root_(std::move(root)) {}
  ChunkStore(Env* env, std::string root, Options options)
      : env_(env), root_(std::move(root)), options_(options) {}

  const std::string& root() const { return root_; }

  // Whether a file is at the chunk's name (not whether it is intact: Get checks that).
  [[nodiscard]] Result<bool> Has(const ChunkHash& hash);
  // Compresses content at zstd_level (1..19) and stores it under hash, which must be its
  // SHA-256 (REQUIRES; checked: kInvalidArgument otherwise). Durable on return (file and
  // directory fsynced) unless Options::defer_sync; then durable after the next Sync().
  [[nodiscard]] Result<PutResult> Put(const ChunkHash& hash, std::span<const std::byte> content,
                                      int zstd_level);
  // Fills out, whose size is the chunk's length, with its verified bytes. kNotFound if absent;
  // kCorruption naming the chunk for a short, oversized, undecodable or wrong file.
  [[nodiscard]] Status Get(const ChunkHash& hash, std::span<std::byte> out);

  // Delta chunks (DeltaChunkRel). `base_content` is the base chunk's verified bytes.
  [[nodiscard]] Result<bool> HasDelta(const ChunkHash& hash, const ChunkHash& base);
  // Compresses content against base_content and stores it at DeltaChunkRel(hash, base_hash)
  // when the frame is at most max_stored bytes; nullopt (nothing written) when it would be
  // larger, so the caller stores the chunk whole instead. Same durability and no-replace rules
  // as Put; hash must be content's SHA-256 and base_hash base_content's (checked).
  [[nodiscard]] Result<std::optional<PutResult>> PutDelta(const ChunkHash& hash,
                                                          std::span<const std::byte> content,
                                                          const ChunkHash& base_hash,
                                                          std::span<const std::byte> base_content,
                                                          int zstd_level, uint64_t max_stored);
  // Like Get, for the delta file of (hash, base): kNotFound if absent, kCorruption naming the
  // chunk and its base for anything that does not decompress, against base_content, to exactly
  // out.size() bytes with the right SHA-256.
  [[nodiscard]] Status GetDelta(const ChunkHash& hash, const ChunkHash& base,
                                std::span<const std::byte> base_content, std::span<std::byte> out);
  // One recipe entry's bytes, however it is stored: Get for a whole chunk; for a delta chunk,
  // Get of its base (base_length bytes, into a buffer of its own) then GetDelta. For readers
  // that have no better place to find the base (the writer's --base, version chains). REQUIRES:
  // !c.hole and out.size() == c.length.
  [[nodiscard]] Status GetEntry(const RecipeChunk& c, std::span<std::byte> out);
  // Removes the delta file of (hash, base), with Remove's checks.
  [[nodiscard]] Status RemoveDelta(const ChunkHash& hash, const ChunkHash& base);
  // Every chunk file, whole (<64 hex>) and delta (<64 hex>.<64 hex>), in the right fan-out
  // directory (other names, temps included, are skipped): for GC.
  [[nodiscard]] Result<std::vector<ChunkInfo>> List();
  // Every temp file (.tmp-*) under .chunks/<2 hex>/ with its mtime, relative to root: a crashed
  // Put's leftovers, for GC.
  [[nodiscard]] Result<std::vector<std::pair<std::string, int64_t>>> ListTemps();
  // Makes every chunk file and fan-out directory Put wrote since the last Sync durable
  // (defer_sync): one Env::SyncFilesystem where supported, else an fsync each. On failure they
  // stay listed for the next Sync.
  [[nodiscard]] Status Sync();
  // Removes the chunk file, after checking (Env::OpenBeneath) that it is a regular file reached
  // through no symlink. kNotFound if absent.
  [[nodiscard]] Status Remove(const ChunkHash& hash);
  // Removes a temp file that ListTemps returned, with the same check.
  [[nodiscard]] Status RemoveTemp(const std::string& rel);

 private:
  // Put and PutDelta: the size of the file at rel if one is there (written once, never edited:
  // it has the same content; Get verifies it), nullopt if absent.
  Result<std::optional<PutResult>> Existing(const std::string& rel);
  // Put and PutDelta: writes frame at rel (beneath root) through a temp in rel's directory,
  // fsync (or the deferred list) and a no-replace rename; stored is false when another writer
  // won the race.
  Result<PutResult> StoreFrame(const std::string& rel, std::span<const std::byte> frame);
  // Get and GetDelta: the file at rel, read whole into a thread-local buffer (valid until this
  // thread's next LoadFrame) after checking its size against MaxStoredBytes(length), checked to
  // be exactly one zstd frame declaring `length` bytes. Errors are kCorruption "<who>: ...".
  Result<std::span<const std::byte>> LoadFrame(const std::string& rel, size_t length,
                                               const std::string& who);

  Env* env_;
  std::string root_;
  Options options_;
  // What defer_sync left to Sync(); behind a pointer so a ChunkStore stays movable.
  struct Unsynced {
    std::mutex mu;
    std::vector<std::string> files;  // relative to root; guarded by mu
    std::set<std::string> dirs;      // guarded by mu
  };
  std::unique_ptr<Unsynced> unsynced_ = std::make_unique<Unsynced>();
};

}  // namespace modelswap::chunk
