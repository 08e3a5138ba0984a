// Versions whose chunks live in a real ChunkStore (sidecar/chunk/chunk_store.h), stored the way
// `write --base` stores them: a chunk the store lacks becomes a delta chunk (DeltaChunkRel)
// against the base version's entry covering most of its bytes, when the delta frame is at most
// half the chunk; the recipe names each delta's base.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "sidecar/cache/chunk_cache.h"
#include "sidecar/chunk/chunk_store.h"
#include "tests/sidecar/cache/cache_test_util.h"

namespace modelswap::cache::testing {

// The entry of `base` that covers most of [offset, offset + length); nullptr if that is a hole
// or nothing overlaps.
inline const chunk::RecipeChunk* CoveringEntry(const chunk::Recipe& base, uint64_t offset,
                                               uint64_t length) {
  const chunk::RecipeChunk* best = nullptr;
  uint64_t best_overlap = 0;
  for (const auto& e : base.chunks) {
    uint64_t from = std::max(offset, e.offset);
    uint64_t to = std::min(offset + length, e.offset + e.length);
    if (to > from && to - from > best_overlap) {
      best_overlap = to - from;
      best = &e;
    }
  }
  return best != nullptr && !best->hole ? best : nullptr;
}

// Chunks v's bytes into `store`: whole chunks if base is null, else deltas as described above.
// Returns v's recipe as the writer would publish it (format 2 when some chunk is a delta).
inline chunk::Recipe PutVersion(chunk::ChunkStore* store, const Version& v, const Version* base) {
  std::map<chunk::ChunkHash, std::pair<chunk::ChunkHash, uint32_t>> deltas;
  auto sink = [&](const chunk::RecipeChunk& c,
                  std::span<const std::byte> data) -> Result<uint32_t> {
    auto has = store->Has(c.hash);
    if (!has) return Fail(has.error());
    const chunk::RecipeChunk* b =
        base != nullptr && !*has ? CoveringEntry(base->recipe, c.offset, c.length) : nullptr;
    if (b != nullptr) {
      auto base_bytes = std::span(base->bytes).subspan(b->offset, b->length);
      MS_ASSIGN_OR_RETURN(auto put,
                          store->PutDelta(c.hash, data, b->hash, base_bytes, 3, c.length / 2));
      if (put) {
        deltas[c.hash] = {b->hash, b->length};
        return put->stored_length;
      }
    }
    MS_ASSIGN_OR_RETURN(chunk::PutResult put, store->Put(c.hash, data, 3));
    return put.stored_length;
  };
  auto recipe = chunk::ChunkBytes(v.bytes, v.recipe.model, v.recipe.version, v.recipe.msf_checksum,
                                  SmallParams(), sink);
  if (!recipe) std::abort();
  for (auto& c : recipe->chunks) {
    auto it = deltas.find(c.hash);
    if (it == deltas.end()) continue;
    c.delta = true;
    c.base_hash = it->second.first;
    c.base_length = it->second.second;
  }
  return std::move(*recipe);
}

inline std::set<chunk::ChunkHash> DeltaHashes(const chunk::Recipe& r) {
  std::set<chunk::ChunkHash> s;
  for (const auto& c : r.chunks) {
    if (c.delta) s.insert(c.hash);
  }
  return s;
}

inline std::set<chunk::ChunkHash> BaseHashes(const chunk::Recipe& r) {
  std::set<chunk::ChunkHash> s;
  for (const auto& c : r.chunks) {
    if (c.delta) s.insert(c.base_hash);
  }
  return s;
}

inline size_t DeltaEntries(const chunk::Recipe& r) {
  size_t n = 0;
  for (const auto& c : r.chunks)
    n += c.delta ? 1 : 0;
  return n;
}

}  // namespace modelswap::cache::testing
