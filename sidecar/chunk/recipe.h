// A chunked version's recipe: <root>/<model>/versions/<version>.recipe, the list of chunks whose
// concatenation is the version's .msf file. Binary, little-endian, written once (temp + rename
// without replacing, like the .msf) and never changed: readers trust nothing but its own checks.
//
//   offset  size  field
//   0       8     magic "MSRECIPE"
//   8       4     format version (1: no delta chunks; 2: some, see below)
//   12      4     flags (0; readers reject others)
//   16      8     file_bytes: the .msf file's size
//   24      8     msf_checksum: the .msf header_checksum (XXH3-64; "xxh3:<hex>" in the manifest)
//   32      4     params.min_bytes   the chunker settings the writer used
//   36      4     params.avg_bytes
//   40      4     params.max_bytes
//   44      4     version 1: reserved (0); version 2: delta_count d (1..chunk_count)
//   48      8     chunk_count
//   56      2     model name length m (1..63)
//   58      2     version name length v (1..63)
//   60      m     model name (ValidateModelName)
//   60+m    v     version name (ValidateVersionName)
//   H=60+m+v      chunk_count entries of kRecipeEntryBytes (52) each:
//                   0  8  offset         (contiguous: entry i starts where entry i-1 ends, from 0)
//                   8  4  length         (1..params.max_bytes)
//                   12 4  stored_length  (bytes of the chunk file: 0 for a hole, else
//                                         1..MaxStoredBytes(length), the delta file for a delta)
//                   16 4  flags          (bit 0: hole; bit 1: delta, version 2 only, never with
//                                         bit 0; other bits 0)
//                   20 32 SHA-256 of the chunk's bytes (all zero for a hole)
//   B=H+52*chunk_count  version 2 only: d base records of kRecipeBaseEntryBytes (36) each, the
//                   k-th for the k-th delta entry in entry order:
//                   0  32 SHA-256 of the base chunk (stored whole; not all zero, not the entry's)
//                   32 4  base_length    (1..params.max_bytes)
//   B+36*d  8     XXH3-64 of every byte before it
// The file is exactly that long. A recipe without delta chunks is always version 1 (so one
// recipe has one encoding, and readers that know only version 1 read it). DecodeRecipe checks,
// in order, each with its own kCorruption: size for the fixed header, magic, format version,
// flags, reserved/delta_count (0 in version 1, not 0 in version 2), names, chunk_count and
// delta_count against the bytes left (before allocating anything), the trailing checksum, params
// (ValidateParams), then every entry (flags, contiguity, length, hole rules, its base record if
// a delta), that the delta entries are exactly delta_count, and that the last chunk ends at
// file_bytes.
//
// Thread safety: plain values and pure functions; RecipeBuilder is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunk_hash.h"
#include "sidecar/chunk/chunker.h"

namespace modelswap::chunk {

inline constexpr char kRecipeMagic[8] = {'M', 'S', 'R', 'E', 'C', 'I', 'P', 'E'};
// Version 1: no delta chunks. Version 2: delta chunks (entry flag bit 1) and the bases table.
// EncodeRecipe writes version 1 whenever no chunk is a delta, so readers that know only version 1
// keep reading every recipe without deltas; they refuse version 2 by its number.
inline constexpr uint32_t kRecipeFormatVersion = 1;
inline constexpr uint32_t kRecipeDeltaFormatVersion = 2;
inline constexpr size_t kRecipeBaseEntryBytes = 36;
inline constexpr size_t kRecipeFixedHeaderBytes = 60;
inline constexpr size_t kRecipeEntryBytes = 52;
inline constexpr size_t kRecipeTrailerBytes = 8;
// ReadRecipeBeneath's cap: 5 million chunks, a 320 GB file at the default 64 KiB average.
inline constexpr uint64_t kMaxRecipeBytes = 256ull << 20;

struct RecipeChunk {
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t stored_length = 0;
  ChunkHash hash;
  bool hole = false;
  // A delta chunk: stored as a zstd frame compressed against the bytes of another chunk (its
  // base, stored whole), at DeltaChunkRel(hash, base_hash). Format version 2 only.
  bool delta = false;
  ChunkHash base_hash;       // all zero unless delta
  uint32_t base_length = 0;  // 0 unless delta; 1..max_bytes

  bool operator==(const RecipeChunk&) const = default;
};

struct Recipe {
  std::string model, version;
  uint64_t file_bytes = 0;
  uint64_t msf_checksum = 0;
  ChunkerParams params;
  std::vector<RecipeChunk> chunks;

  bool operator==(const Recipe&) const = default;
};

[[nodiscard]] std::string EncodeRecipe(const Recipe& recipe);
// kCorruption "recipe: <what>" for anything but a well-formed recipe (see the checks above).
[[nodiscard]] Result<Recipe> DecodeRecipe(std::span<const std::byte> bytes);

// "<model>/versions/<version>.recipe", relative to the volume root. Callers validate names first.
[[nodiscard]] std::string RecipeRel(std::string_view model, std::string_view version);
// "<version>.recipe"
[[nodiscard]] std::string RecipeFileName(std::string_view version);

// Reads and decodes `rel` beneath root (Env::OpenBeneath: no symlink followed; a regular file of
// at most kMaxRecipeBytes, else kInvalidArgument). Errors name the path.
[[nodiscard]] Result<Recipe> ReadRecipeBeneath(Env* env, const std::string& root,
                                               const std::string& rel);

// Receives each non-hole chunk as it is cut (its offset, length and hash are set; stored_length
// is 0) with its bytes, valid only during the call; stores it and returns its stored_length.
using ChunkSink = std::function<Result<uint32_t>(const RecipeChunk&, std::span<const std::byte>)>;

// Chunks a file's bytes fed in order, in pieces of any size, keeping at most
// Lookahead(params) + one piece buffered. The chunks (and so the recipe) depend only on the
// concatenated bytes, not on how they were split into Add calls.
class RecipeBuilder {
 public:
  // REQUIRES: names and params valid (Create checks them).
  static Result<RecipeBuilder> Create(std::string model, std::string version,
                                      const ChunkerParams& params, ChunkSink sink);

  // Cuts every chunk that the bytes so far decide and hands each to the sink.
  Status Add(std::span<const std::byte> data);
  // Cuts the rest and returns the recipe. The builder is spent afterwards.
  Result<Recipe> Finish(uint64_t msf_checksum);

  uint64_t bytes_added() const { return added_; }

 private:
  // Cuts a whole span in place, without copying it into pending_.
  friend Result<Recipe> ChunkBytes(std::span<const std::byte>, std::string, std::string, uint64_t,
                                   const ChunkerParams&, ChunkSink);

  RecipeBuilder(Recipe recipe, ChunkSink sink);
  // Cuts chunks from pending_ while at least Lookahead bytes remain (or all if `final`).
  Status Drain(bool final);

  Recipe recipe_;
  ChunkSink sink_;
  std::vector<std::byte> pending_;
  size_t pending_start_ = 0;  // bytes of pending_ already cut
  uint64_t added_ = 0;
  bool finished_ = false;
};

// A whole file's bytes in one span.
[[nodiscard]] Result<Recipe> ChunkBytes(std::span<const std::byte> file, std::string model,
                                        std::string version, uint64_t msf_checksum,
                                        const ChunkerParams& params, ChunkSink sink);
// Streams the regular file at `path` (opened with Env::Open, read in 4 MiB pieces).
[[nodiscard]] Result<Recipe> ChunkFile(Env* env, const std::string& path, std::string model,
                                       std::string version, uint64_t msf_checksum,
                                       const ChunkerParams& params, ChunkSink sink);

}  // namespace modelswap::chunk
