// Scanning a cache directory (cache_scan.h).
#include "sidecar/cache/cache_scan.h"

#include <map>

#include "sidecar/cache/cache_layout.h"
#include "sidecar/cache/file_ops.h"

namespace modelswap::cache {
namespace {

void ScanChunks(Env* env, const std::string& cache_dir, CacheScan* scan) {
  std::string chunks = ChunksDir(cache_dir);
  auto shards = env->ListDir(chunks);
  if (!shards) return;
  for (const std::string& shard : *shards) {
    std::string shard_dir = JoinPath(chunks, shard);
    auto names = env->ListDir(shard_dir);
    if (!names) continue;
    for (const std::string& name : *names) {
      auto parsed = ParseChunkEntry(name);
      if (!parsed) continue;
      std::string path = JoinPath(shard_dir, name);
      auto usage = StatUsage(path);
      if (!usage || !usage->regular) continue;
      scan->allocated += usage->allocated;
      if (parsed->temp) {
        scan->temps.push_back({true, path, parsed->hash, "", "", usage->allocated});
        continue;
      }
      ScannedEntry e;
      e.kind = ScannedEntry::Kind::kChunk;
      e.path = path;
      e.hash = parsed->hash;
      e.allocated = usage->allocated;
      e.history = ReadAccessHistory(path).value_or(AccessHistory{});
      scan->entries.push_back(std::move(e));
    }
  }
}

void ScanModel(Env* env, const std::string& model, const std::string& dir, CacheScan* scan) {
  auto names = env->ListDir(dir);
  if (!names) return;
  std::map<std::string, size_t> assembled_recipes;        // recipe name -> index in scan->entries
  std::vector<std::pair<std::string, uint64_t>> recipes;  // name, allocated
  for (const std::string& name : *names) {
    auto parsed = ParseVersionEntry(name);
    if (!parsed) continue;
    std::string path = JoinPath(dir, name);
    auto usage = StatUsage(path);
    if (!usage || !usage->regular) continue;
    scan->allocated += usage->allocated;
    switch (parsed->kind) {
      case VersionEntryName::Kind::kTemp:
        scan->temps.push_back({false, path, {}, model, parsed->final_name, usage->allocated});
        break;
      case VersionEntryName::Kind::kRecipe:
        recipes.emplace_back(name, usage->allocated);
        break;
      case VersionEntryName::Kind::kAssembled: {
        ScannedEntry e;
        e.kind = ScannedEntry::Kind::kVersion;
        e.path = path;
        e.model = model;
        e.file_name = name;
        std::string recipe = RecipeFileNameFor(parsed->version, parsed->checksum);
        e.recipe_path = JoinPath(dir, recipe);
        assembled_recipes.emplace(recipe, scan->entries.size());
        e.allocated = usage->allocated;
        e.history = ReadAccessHistory(path).value_or(AccessHistory{});
        scan->entries.push_back(std::move(e));
        break;
      }
    }
  }
  for (const auto& [name, allocated] : recipes) {
    if (auto it = assembled_recipes.find(name); it != assembled_recipes.end()) {
      scan->entries[it->second].allocated += allocated;
    } else {
      // A recipe whose .msf is missing: a builder died between the two renames, or an eviction
      // between the two unlinks. Treated like a temp of that version.
      scan->temps.push_back({false, JoinPath(dir, name), {}, model, name, allocated});
    }
  }
}

}  // namespace

Result<CacheScan> ScanCache(Env* env, const std::string& cache_dir) {
  CacheScan scan;
  ScanChunks(env, cache_dir, &scan);
  std::string versions = VersionsDir(cache_dir);
  auto models = env->ListDir(versions);
  if (models) {
    for (const std::string& model : *models) {
      if (!ValidateNames(model, "v")) continue;
      ScanModel(env, model, JoinPath(versions, model), &scan);
    }
  }
  return scan;
}

Result<uint64_t> CacheAllocatedBytes(Env* env, const std::string& cache_dir) {
  MS_ASSIGN_OR_RETURN(CacheScan scan, ScanCache(env, cache_dir));
  return scan.allocated;
}

}  // namespace modelswap::cache
