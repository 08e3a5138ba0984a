// One pass over a cache directory: every chunk and assembled version with its allocated size and
// access history, the temps, and recipes left without their .msf; what eviction decides from.
//
// Sizes are allocated bytes (st_blocks * 512), not st_size: an assembled version's holes take no
// disk and must not count against the budget.
//
// Thread safety: a scan reads the directory as it is; files may come and go during it (entries
// that vanish are skipped). Safe to run from any number of processes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/access_history.h"
#include "sidecar/chunk/chunk_hash.h"

namespace modelswap::cache {

struct ScannedEntry {
  enum class Kind { kChunk, kVersion };
  Kind kind = Kind::kChunk;
  std::string path;         // the chunk or the .msf
  std::string recipe_path;  // versions: the recipe beside it (may be missing)
  std::string model;        // versions
  std::string file_name;    // versions: the .msf's name
  chunk::ChunkHash hash;    // chunks
  uint64_t allocated = 0;   // with the recipe, for versions
  AccessHistory history;
};

struct ScannedTemp {
  bool chunk = false;  // a chunk fill's temp, else a version build's (or its recipe's)
  std::string path;
  chunk::ChunkHash hash;   // chunk temps
  std::string model;       // version temps
  std::string final_name;  // version temps: the .msf (or .recipe) it would become
  uint64_t allocated = 0;
};

struct CacheScan {
  std::vector<ScannedEntry> entries;
  std::vector<ScannedTemp> temps;  // includes recipes without their .msf (final_name = recipe)
  uint64_t allocated = 0;          // everything under chunks/ and versions/
};

[[nodiscard]] Result<CacheScan> ScanCache(Env* env, const std::string& cache_dir);

// The cache's allocated bytes (what ScanCache sums), for status pages and tests.
[[nodiscard]] Result<uint64_t> CacheAllocatedBytes(Env* env, const std::string& cache_dir);

}  // namespace modelswap::cache
