// The chunk store's GC (chunk_gc.h): markers, the referenced set from every recipe, removal.
#include "sidecar/chunk/chunk_gc.h"

#include <spdlog/spdlog.h>

#include <unordered_set>

#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/chunk/writer_marker.h"

namespace modelswap::chunk {
namespace {

using HashSet = std::unordered_set<ChunkHash, ChunkHashHasher>;
using DeltaKey = std::pair<ChunkHash, ChunkHash>;  // (hash, base): a delta file's name
struct DeltaKeyHasher {
  size_t operator()(const DeltaKey& k) const {
    // SHA-256 bytes are uniform: mixing the two halves' hashes is enough.
    return ChunkHashHasher{}(k.first) * 31 ^ ChunkHashHasher {}(k.second);
  }
};
// What the recipes name: whole files <H>, and delta files <H>.<B> (whose base <B> is in whole).
struct Referenced {
  HashSet whole;
  std::unordered_set<DeltaKey, DeltaKeyHasher> deltas;
};

constexpr std::string_view kRecipeSuffix = ".recipe";

// Every chunk named by a recipe at <root>/*/versions/*.recipe.
Status CollectReferenced(Env* env, const std::string& root, Referenced* referenced,
                         GcResult* result) {
  MS_ASSIGN_OR_RETURN(std::vector<std::string> models, env->ListDir(root));
  for (const std::string& model : models) {
    if (model.starts_with(".")) continue;  // .chunks and other dot folders hold no recipes
    auto names = env->ListDir(JoinPath(JoinPath(root, model), "versions"));
    if (!names) {
      // Not a model folder (a file, or no versions/ yet): nothing to read. Any other failure
      // to list could hide recipes, so it stops the GC.
      Code c = names.error().code();
      if (c == Code::kNotFound) continue;
      if (auto info = env->Stat(JoinPath(root, model)); info && !info->is_dir) continue;
      return Fail(names.error().Context("gc: listing the versions of " + model));
    }
    for (const std::string& name : *names) {
      if (!name.ends_with(kRecipeSuffix) || name.starts_with(".")) continue;
      const std::string rel = model + "/versions/" + name;
      auto recipe = ReadRecipeBeneath(env, root, rel);
      if (!recipe && recipe.error().code() == Code::kNotFound) continue;  // removed meanwhile
      if (!recipe) {
        return Fail(recipe.error().Context(
            "gc: stopped, recipe " + rel +
            " cannot be read, so the chunks it names are unknown (fix or remove it)"));
      }
      ++result->recipes;
      for (const RecipeChunk& c : recipe->chunks) {
        if (c.hole) continue;
        if (c.delta) {
          // A delta entry needs its delta file and its base, stored whole (not the whole <H>:
          // if one exists it is garbage unless another recipe names it whole).
          referenced->deltas.emplace(c.hash, c.base_hash);
          referenced->whole.insert(c.base_hash);
        } else {
          referenced->whole.insert(c.hash);
        }
      }
    }
  }
  return Ok();
}

// Stops (returns the marker's path) if a writer marker younger than the grace period exists.
Result<std::string> FreshWriter(Env* env, const std::string& root, int64_t cutoff) {
  MS_ASSIGN_OR_RETURN(std::vector<MarkerInfo> writers, ListMarkers(env, root, kWritersDir));
  for (const MarkerInfo& w : writers) {
    if (w.mtime_ns > cutoff) return w.rel;
  }
  return std::string();
}

// Keeps the GC marker fresh (writer_marker.h): refreshed at least every kGcMarkerRefreshNs.
class MarkerKeeper {
 public:
  MarkerKeeper(Env* env, const std::string& root, std::string rel)
      : env_(env), root_(root), rel_(std::move(rel)), last_(env->NowMonotonicNanos()) {}
  Status Touch(bool force) {
    if (rel_.empty()) return Ok();  // dry run: no marker
    const int64_t now = env_->NowMonotonicNanos();
    if (!force && now - last_ < kGcMarkerRefreshNs) return Ok();
    last_ = now;
    return RefreshMarker(env_, root_, rel_);
  }

 private:
  Env* env_;
  const std::string& root_;
  std::string rel_;
  int64_t last_;
};

Status RemoveUnreferenced(ChunkStore& store, const Referenced& referenced, int64_t cutoff,
                          bool dry_run, MarkerKeeper& marker, GcResult* result) {
  MS_ASSIGN_OR_RETURN(std::vector<ChunkInfo> chunks, store.List());
  for (const ChunkInfo& c : chunks) {
    ++result->chunks_seen;
    result->deltas_seen += c.delta ? 1 : 0;
    if (c.delta ? referenced.deltas.contains({c.hash, c.base})
                : referenced.whole.contains(c.hash)) {
      ++result->chunks_referenced;
      continue;
    }
    if (c.mtime_ns > cutoff) {
      ++result->chunks_young;
      continue;
    }
    if (!dry_run) {
      MS_RETURN_IF_ERROR(marker.Touch(false));
      Status st = c.delta ? store.RemoveDelta(c.hash, c.base) : store.Remove(c.hash);
      if (!st && st.error().code() == Code::kNotFound) continue;  // another GC was faster
      if (!st) {
        return Fail(st.error().Context("gc: removing chunk " + ToHex(c.hash) +
                                       (c.delta ? " (delta against " + ToHex(c.base) + ")" : "")));
      }
    }
    ++result->chunks_removed;
    result->deltas_removed += c.delta ? 1 : 0;
    result->bytes_removed += c.stored_bytes;
  }
  MS_ASSIGN_OR_RETURN(auto temps, store.ListTemps());
  for (const auto& [rel, mtime] : temps) {
    if (mtime > cutoff) continue;
    if (!dry_run) {
      Status st = store.RemoveTemp(rel);
      if (!st && st.error().code() != Code::kNotFound) return Fail(st.error());
    }
    ++result->temps_removed;
  }
  return Ok();
}

Result<GcResult> Collect(Env* env, const std::string& root, const GcOptions& options,
                         MarkerKeeper& marker) {
  GcResult result;
  const int64_t cutoff = env->NowUnixNanos() - options.grace_ns;
  MS_ASSIGN_OR_RETURN(result.stopped_by_writer, FreshWriter(env, root, cutoff));
  if (!result.stopped_by_writer.empty()) return result;
  Referenced referenced;
  MS_RETURN_IF_ERROR(CollectReferenced(env, root, &referenced, &result));
  // Once more, right before removing: a writer that started while the recipes were read has
  // created its marker by now, or will see ours, which is made fresh first (writer_marker.h).
  MS_RETURN_IF_ERROR(marker.Touch(true));
  MS_ASSIGN_OR_RETURN(result.stopped_by_writer, FreshWriter(env, root, cutoff));
  if (!result.stopped_by_writer.empty()) return result;
  ChunkStore store(env, root);
  MS_RETURN_IF_ERROR(
      RemoveUnreferenced(store, referenced, cutoff, options.dry_run, marker, &result));
  return result;
}

}  // namespace

Result<GcResult> CollectGarbage(Env* env, const std::string& root, const GcOptions& options) {
  std::string marker;
  if (!options.dry_run) {
    MS_ASSIGN_OR_RETURN(marker, CreateGcMarker(env, root));
  }
  MarkerKeeper keeper(env, root, marker);
  auto result = Collect(env, root, options, keeper);
  if (!marker.empty()) (void)RemoveMarker(env, root, marker);
  if (result && !result->stopped_by_writer.empty()) {
    spdlog::info("chunk gc root={} stopped: writer in flight ({})", root,
                 result->stopped_by_writer);
  } else if (result) {
    spdlog::info(
        "chunk gc root={} recipes={} chunks={} (deltas={}) referenced={} young={} removed={} "
        "(deltas={}) bytes={} temps={}{}",
        root, result->recipes, result->chunks_seen, result->deltas_seen, result->chunks_referenced,
        result->chunks_young, result->chunks_removed, result->deltas_removed, result->bytes_removed,
        result->temps_removed, options.dry_run ? " (dry run)" : "");
  }
  return result;
}

}  // namespace modelswap::chunk
