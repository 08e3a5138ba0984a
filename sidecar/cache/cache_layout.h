// The node cache's directory layout (README.md draws it), the names in it, and the lock ranges
// that stand for each chunk and each assembled version.
//
// Every name that reaches a path comes from a recipe on the shared volume, which the cache does
// not trust: model and version are checked with common/names.h before any path is built, a chunk
// is named only by the 64 hex digits of its hash, and an assembled file by its version plus the
// 16 hex digits of its .msf checksum. Parsing goes from the right ("<version>-<16 hex>.msf"),
// because a version may itself contain '-' and '.'.
//
// Locks: instead of one lock file per chunk (millions of inodes, and a lock file can only be
// deleted safely by someone holding it), each kind of lock is one file under locks/ and each chunk
// or version is one byte of it, at an offset derived from its name (fcntl locks may lie past the
// end of a file: POSIX.1-2008 fcntl, "l_start ... may extend beyond end-of-file"). Two names
// that share an offset (56 bits of a hash) only serialise each other; that never deadlocks,
// because no one waits for a second lock of the same kind while holding one.
//
// Thread safety: pure functions, except EnsureLayout (idempotent; safe to race).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunk_hash.h"

namespace modelswap::cache {

// The lock files under <cache>/locks/.
enum class LockKind {
  kChunkFill,     // "chunks": exclusive while a chunk is fetched into the cache
  kVersionBuild,  // "build": exclusive while a version is assembled
  kVersionHold,   // "hold": shared while a version is mapped; exclusive while it is evicted
  kEvict,         // "evict": exclusive while one process evicts (offset 0)
};

std::string LockFilePath(std::string_view cache_dir, LockKind kind);
// The byte that stands for a chunk: its hash's first 7 bytes, big-endian (< 2^56).
uint64_t ChunkLockOffset(const chunk::ChunkHash& hash);
// The byte that stands for an assembled version: 56 bits of XXH3("<model>/<file name>").
uint64_t VersionLockOffset(std::string_view model, std::string_view file_name);

std::string ChunksDir(std::string_view cache_dir);
std::string ChunkShardDir(std::string_view cache_dir, const chunk::ChunkHash& hash);
std::string ChunkPath(std::string_view cache_dir, const chunk::ChunkHash& hash);
// "<shard>/<64 hex>.tmp-<pid>-<ns>": a fill in progress (or a dead filler's leftover).
std::string ChunkTempPath(std::string_view cache_dir, const chunk::ChunkHash& hash,
                          int64_t unique_ns);
inline constexpr std::string_view kTempInfix = ".tmp-";

std::string VersionsDir(std::string_view cache_dir);
std::string ModelCacheDir(std::string_view cache_dir, std::string_view model);
// 16 lowercase hex digits of an .msf header checksum.
std::string ChecksumHex(uint64_t checksum);
// "<version>-<16 hex>.msf" and "<version>-<16 hex>.recipe". Callers validate names first.
std::string AssembledFileName(std::string_view version, uint64_t checksum);
std::string RecipeFileNameFor(std::string_view version, uint64_t checksum);
// "<final name>.tmp-<pid>-<ns>": where the file is built (or a dead builder's leftover).
std::string TempNameFor(std::string_view final_name, int64_t unique_ns);

// Names found in a model's directory of the cache.
struct VersionEntryName {
  enum class Kind { kAssembled, kRecipe, kTemp };
  Kind kind;
  std::string version;
  uint64_t checksum = 0;
  std::string final_name;  // for a temp: the name it would be renamed to
};
// nullopt for anything the cache did not write (ignored, never deleted).
std::optional<VersionEntryName> ParseVersionEntry(std::string_view name);
// A chunk shard entry: the hash of a final chunk file (exactly 64 hex digits) or of a temp.
struct ChunkEntryName {
  chunk::ChunkHash hash;
  bool temp = false;
};
std::optional<ChunkEntryName> ParseChunkEntry(std::string_view name);

// Model and version as a recipe names them, checked before they touch a path.
[[nodiscard]] Status ValidateNames(std::string_view model, std::string_view version);

// Creates <cache>/{chunks,versions,locks} (0755) and the lock files (0644). Idempotent.
[[nodiscard]] Status EnsureLayout(Env* env, const std::string& cache_dir);

// A value unique to this call in this process (pid and a monotonic counter mixed with the clock),
// for temp names.
int64_t UniqueSuffix(Env* env);

}  // namespace modelswap::cache
