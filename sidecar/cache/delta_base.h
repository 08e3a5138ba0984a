// Where the node cache finds a delta entry's base bytes (the chunk a delta chunk was compressed
// against, chunk_store.h) before it fills the entry (chunk_cache.h), in this order:
//   1. The chunk cache's own file for the base (ChunkCache::Lookup, length and SHA-256 checked):
//      the base alone, named by its hash, on the local disk; reading it refreshes its access
//      history, so a base that many delta chunks share stays cached.
//   2. The previous assembled version the plan holds (BaseVersion::offset_of): the base is
//      usually one of its chunks, since a writer picks bases from the version it wrote against.
//      Local too, and there even when the base's chunk file was evicted or never existed (the
//      previous version's own chunks may have been copied from the one before it). Read with
//      pread from the held descriptor and SHA-256 checked: unlike the ranges copied whole (which
//      the final .msf check covers), a wrong base would make a sound delta file fail its check
//      and be blamed on the volume.
//   3. Else fetched whole from the volume through the chunk cache (ChunkCache::Get of the base's
//      whole entry): one fetch, with the usual refetch-once rule, and the base is cached, so the
//      next delta against it finds it in step 1.
// A base is looked for before the delta entry's fill lock is taken (chunk_cache.h says why).
//
// Thread safety: a plain function; safe from several threads sharing one ChunkCache and one
// held previous version (pread does not move the descriptor's offset).
#pragma once

#include <span>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/assembly_plan.h"
#include "sidecar/cache/chunk_cache.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::cache {

enum class BaseOrigin { kCache, kPrevious, kFetched };

struct BaseRead {
  BaseOrigin origin = BaseOrigin::kCache;
  int fetches = 0;  // calls to the source (kFetched: 2 after a corrupt first fetch)
};

// Fills out (c.base_length bytes) with delta entry c's base, verified. `previous` may be null.
// Errors (only from step 3) name the base and the delta entry: kNotFound for a base missing
// from the volume, kCorruption for one corrupt on both fetches.
// REQUIRES: c.delta and out.size() == c.base_length.
[[nodiscard]] Result<BaseRead> ReadDeltaBase(Env* env, ChunkCache* cache,
                                             const BaseVersion* previous,
                                             const chunk::RecipeChunk& c, std::span<std::byte> out,
                                             const ChunkSourceFn& source);

}  // namespace modelswap::cache
