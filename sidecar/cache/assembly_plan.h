// Where each byte of a version being assembled comes from: the model's previous assembled version
// (chunks both recipes share), the chunk cache (every other data chunk), or nowhere (holes,
// left as holes by ftruncate). Also the checks a recipe passes before anything is built from it.
//
// The base ("previous version") is the assembled version of the same model, among the four most
// recently referenced, that shares the most bytes with the new recipe, judged by the recipe kept
// beside each assembled file; a delta entry whose base it holds counts as shared (its bytes need
// only the small delta file from the volume, delta_base.h). It is held (hold.h) for the whole
// assembly, so eviction cannot remove it mid-copy. Runs of shared chunks that lie back to back in
// both files become one copy, so whole unchanged stretches can be cloned (FICLONERANGE wants
// block-aligned ranges, and long runs contain aligned blocks even though chunk boundaries are
// content-defined).
//
// Bytes copied from the base are not hashed chunk by chunk: the base passed the full .msf check
// when it was built, and the new file passes it again before it is published (its header
// checksum commits to every section checksum, so to every byte); if that check fails after a
// base was used, the assembler rebuilds without one.
//
// Thread safety: plain functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/hold.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::cache {

// kCorruption naming the problem for a recipe the cache cannot build: bad names, no chunks,
// chunks not contiguous from 0 to file_bytes, an empty chunk or one longer than
// chunk::kMaxChunkBytes, a delta entry that is a hole or whose base is empty or longer than
// that, a file smaller than an .msf header. DecodeRecipe checks the same when a
// recipe is read from the volume; a caller may also build a Recipe in memory.
[[nodiscard]] Status CheckRecipe(const chunk::Recipe& recipe);

struct BaseVersion {
  std::string version;
  std::string path;
  Hold hold;  // keeps it from eviction; hold.fd() is what is copied from
  std::unordered_map<chunk::ChunkHash, uint64_t, chunk::ChunkHashHasher> offset_of;
};

// The best base for `target` in the cache, held; nullopt if no assembled version of the model
// shares a chunk with it. Candidates that cannot be read are skipped (logged), never fatal.
[[nodiscard]] std::optional<BaseVersion> ChooseBase(Env* env, const std::string& cache_dir,
                                                    const chunk::Recipe& target,
                                                    const std::string& target_file_name);

struct AssemblyPlan {
  struct BaseCopy {
    uint64_t src_offset = 0, dst_offset = 0, length = 0;
  };
  std::vector<BaseCopy> base_copies;  // coalesced runs
  std::vector<size_t> cache_chunks;   // indices into recipe.chunks
  uint64_t chunks_from_previous = 0, bytes_from_previous = 0;
  uint64_t holes = 0, hole_bytes = 0;
  uint32_t max_chunk_bytes = 0;  // the largest chunk read through the cache
  uint32_t max_base_bytes = 0;   // the largest base of a delta entry among them (0: no delta)
};

AssemblyPlan MakePlan(const chunk::Recipe& recipe, const BaseVersion* base);

}  // namespace modelswap::cache
