// One eviction pass (eviction.h).
#include "sidecar/cache/eviction.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "sidecar/cache/cache_layout.h"
#include "sidecar/cache/cache_scan.h"
#include "sidecar/cache/ofd_lock.h"

namespace modelswap::cache {
namespace {

// The lock whose holder owns a temp (or an entry): free means its writer is gone.
std::pair<std::string, uint64_t> OwnerLock(const std::string& dir, const ScannedTemp& t) {
  if (t.chunk) return {LockFilePath(dir, LockKind::kChunkFill), ChunkLockOffset(t.hash)};
  // A recipe (or its temp) is written under the build lock of its .msf.
  std::string msf = t.final_name;
  if (msf.ends_with(".recipe")) msf = msf.substr(0, msf.size() - 7) + ".msf";
  return {LockFilePath(dir, LockKind::kVersionBuild), VersionLockOffset(t.model, msf)};
}

void RemoveDeadTemps(Env* env, const std::string& dir, CacheScan* scan, EvictStats* stats) {
  for (const ScannedTemp& t : scan->temps) {
    auto [file, offset] = OwnerLock(dir, t);
    auto lock = OfdLock::TryAcquire(file, offset, OfdLock::Mode::kExclusive);
    if (!lock || !lock->has_value()) continue;  // its writer is alive (or we cannot tell)
    if (env->Remove(t.path)) {
      spdlog::info("cache: removed {} (its writer is gone)", t.path);
      ++stats->temps_removed;
      scan->allocated -= std::min(scan->allocated, t.allocated);
    }
  }
}

// Per model, the assembled version referenced last.
std::map<std::string, const ScannedEntry*> NewestPerModel(const CacheScan& scan) {
  std::map<std::string, const ScannedEntry*> newest;
  for (const ScannedEntry& e : scan.entries) {
    if (e.kind != ScannedEntry::Kind::kVersion) continue;
    auto& slot = newest[e.model];
    if (slot == nullptr || e.history.last_ns > slot->history.last_ns) slot = &e;
  }
  return newest;
}

// Removes one entry under its lock; false if skipped.
bool EvictOne(Env* env, const std::string& dir, const ScannedEntry& e, EvictStats* stats) {
  if (e.kind == ScannedEntry::Kind::kChunk) {
    auto lock = OfdLock::TryAcquire(LockFilePath(dir, LockKind::kChunkFill),
                                    ChunkLockOffset(e.hash), OfdLock::Mode::kExclusive);
    if (!lock || !lock->has_value()) {
      ++stats->skipped_filling;
      return false;
    }
    if (!env->Remove(e.path)) return false;
    ++stats->chunks_evicted;
    return true;
  }
  auto lock =
      OfdLock::TryAcquire(LockFilePath(dir, LockKind::kVersionHold),
                          VersionLockOffset(e.model, e.file_name), OfdLock::Mode::kExclusive);
  if (!lock || !lock->has_value()) {
    ++stats->skipped_held;
    return false;
  }
  if (!env->Remove(e.path)) return false;
  (void)env->Remove(e.recipe_path);
  spdlog::info("cache: evicted {}", e.path);
  ++stats->versions_evicted;
  return true;
}

}  // namespace

Result<EvictStats> Evict(Env* env, const CacheOptions& o, const EvictRequest& request) {
  MS_RETURN_IF_ERROR(EnsureLayout(env, o.dir));
  MS_ASSIGN_OR_RETURN(OfdLock pass, OfdLock::Acquire(LockFilePath(o.dir, LockKind::kEvict), 0,
                                                     OfdLock::Mode::kExclusive));
  MS_ASSIGN_OR_RETURN(CacheScan scan, ScanCache(env, o.dir));
  EvictStats stats;
  stats.bytes_before = scan.allocated;
  RemoveDeadTemps(env, o.dir, &scan, &stats);

  uint64_t high = static_cast<uint64_t>(o.high_watermark * static_cast<double>(o.max_bytes));
  uint64_t low = static_cast<uint64_t>(o.low_watermark * static_cast<double>(o.max_bytes));
  bool over = o.max_bytes > 0 && scan.allocated > high;
  if (!over && !request.force) {
    stats.bytes_after = stats.target_bytes = scan.allocated;
    return stats;
  }
  stats.ran = true;
  uint64_t target = o.max_bytes > 0 ? low : scan.allocated;
  if (request.force) {
    uint64_t freed = scan.allocated > request.need_bytes ? scan.allocated - request.need_bytes : 0;
    target = std::min(target, freed);
  }
  stats.target_bytes = target;

  auto newest = NewestPerModel(scan);
  std::vector<const ScannedEntry*> order;
  for (const ScannedEntry& e : scan.entries)
    order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const ScannedEntry* a, const ScannedEntry* b) {
    return EvictBefore(a->history, b->history);
  });
  uint64_t used = scan.allocated;
  for (const ScannedEntry* e : order) {
    if (used <= target) break;
    if (e->kind == ScannedEntry::Kind::kVersion && newest[e->model] == e) {
      ++stats.skipped_newest;
      continue;
    }
    if (EvictOne(env, o.dir, *e, &stats)) used -= std::min(used, e->allocated);
  }
  stats.bytes_after = used;
  if (used > target) {
    spdlog::warn(
        "cache: {} bytes still used after eviction (target {}): {} held, {} newest, {} "
        "being filled",
        used, target, stats.skipped_held, stats.skipped_newest, stats.skipped_filling);
  }
  return stats;
}

}  // namespace modelswap::cache
