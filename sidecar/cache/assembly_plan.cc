// Planning an assembly (assembly_plan.h).
#include "sidecar/cache/assembly_plan.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>

#include "sidecar/cache/access_history.h"
#include "sidecar/cache/cache_layout.h"
#include "sidecar/cache/file_ops.h"
#include "sidecar/msf/format.h"

namespace modelswap::cache {

Status CheckRecipe(const chunk::Recipe& r) {
  auto names = ValidateNames(r.model, r.version);
  if (!names) return Fail(Code::kCorruption, "recipe: " + names.error().message());
  std::string what = "recipe " + r.model + "/" + r.version + ": ";
  if (r.file_bytes < msf::kHeaderSize) {
    return Fail(Code::kCorruption, what + "file_bytes " + std::to_string(r.file_bytes) +
                                       " is smaller than an .msf header");
  }
  uint64_t next = 0;
  for (size_t i = 0; i < r.chunks.size(); ++i) {
    const chunk::RecipeChunk& c = r.chunks[i];
    std::string at = "chunk " + std::to_string(i) + " ";
    if (c.offset != next) {
      return Fail(Code::kCorruption, what + at + "starts at " + std::to_string(c.offset) +
                                         ", not where the previous one ends (" +
                                         std::to_string(next) + ")");
    }
    if (c.length == 0 || c.length > chunk::kMaxChunkBytes) {
      return Fail(Code::kCorruption, what + at + "has length " + std::to_string(c.length));
    }
    if (c.length > r.file_bytes - c.offset) {
      return Fail(Code::kCorruption, what + at + "ends past file_bytes");
    }
    if (c.delta && c.hole) return Fail(Code::kCorruption, what + at + "is a hole and a delta");
    if (c.delta && (c.base_length == 0 || c.base_length > chunk::kMaxChunkBytes)) {
      return Fail(Code::kCorruption,
                  what + at + "is a delta with a base of length " + std::to_string(c.base_length));
    }
    next = c.offset + c.length;
  }
  if (next != r.file_bytes) {
    return Fail(Code::kCorruption, what + "chunks end at " + std::to_string(next) +
                                       ", not at file_bytes " + std::to_string(r.file_bytes));
  }
  return Ok();
}

namespace {

struct Candidate {
  std::string file_name;
  std::string version;
  uint64_t checksum = 0;
  int64_t last_ns = 0;
};

uint64_t SharedBytes(const chunk::Recipe& target, const chunk::Recipe& base) {
  std::unordered_set<chunk::ChunkHash, chunk::ChunkHashHasher> have;
  for (const auto& c : base.chunks) {
    if (!c.hole) have.insert(c.hash);
  }
  uint64_t shared = 0;
  for (const auto& c : target.chunks) {
    if (!c.hole && (have.contains(c.hash) || (c.delta && have.contains(c.base_hash)))) {
      shared += c.length;
    }
  }
  return shared;
}

Result<chunk::Recipe> ReadCachedRecipe(Env* env, const std::string& path) {
  MS_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(env, path, chunk::kMaxRecipeBytes));
  return chunk::DecodeRecipe(std::as_bytes(std::span(bytes)));
}

}  // namespace

std::optional<BaseVersion> ChooseBase(Env* env, const std::string& cache_dir,
                                      const chunk::Recipe& target,
                                      const std::string& target_file_name) {
  std::string dir = ModelCacheDir(cache_dir, target.model);
  auto names = env->ListDir(dir);
  if (!names) return std::nullopt;
  std::vector<Candidate> candidates;
  for (const std::string& name : *names) {
    auto e = ParseVersionEntry(name);
    if (!e || e->kind != VersionEntryName::Kind::kAssembled || name == target_file_name) continue;
    auto h = ReadAccessHistory(JoinPath(dir, name));
    if (!h) continue;
    candidates.push_back({name, e->version, e->checksum, h->last_ns});
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.last_ns > b.last_ns; });
  if (candidates.size() > 4) candidates.resize(4);

  std::optional<chunk::Recipe> best;
  const Candidate* best_c = nullptr;
  uint64_t best_shared = 0;
  for (const Candidate& c : candidates) {
    std::string recipe_path = JoinPath(dir, RecipeFileNameFor(c.version, c.checksum));
    auto recipe = ReadCachedRecipe(env, recipe_path);
    if (!recipe) {
      spdlog::info("cache: not using {} as a base: {}", c.file_name, recipe.error().ToString());
      continue;
    }
    if (recipe->model != target.model || recipe->version != c.version ||
        recipe->msf_checksum != c.checksum) {
      spdlog::warn("cache: {} does not describe {}; not using it as a base", recipe_path,
                   c.file_name);
      continue;
    }
    uint64_t shared = SharedBytes(target, *recipe);
    if (shared > best_shared) {
      best_shared = shared;
      best = std::move(*recipe);
      best_c = &c;
    }
  }
  if (!best) return std::nullopt;

  BaseVersion base;
  base.version = best_c->version;
  base.path = JoinPath(dir, best_c->file_name);
  auto lock = LockHold(cache_dir, target.model, best_c->file_name);
  if (!lock) return std::nullopt;
  auto hold = HoldLocked(std::move(*lock), base.path);
  if (!hold) return std::nullopt;  // evicted since we listed it
  auto usage = StatUsageFd(hold->fd(), base.path);
  if (!usage || usage->size != best->file_bytes) return std::nullopt;
  base.hold = std::move(*hold);
  for (const auto& c : best->chunks) {
    if (!c.hole) base.offset_of.emplace(c.hash, c.offset);
  }
  return base;
}

AssemblyPlan MakePlan(const chunk::Recipe& recipe, const BaseVersion* base) {
  AssemblyPlan plan;
  for (size_t i = 0; i < recipe.chunks.size(); ++i) {
    const chunk::RecipeChunk& c = recipe.chunks[i];
    if (c.hole) {
      ++plan.holes;
      plan.hole_bytes += c.length;
      continue;
    }
    if (base != nullptr) {
      auto it = base->offset_of.find(c.hash);
      if (it != base->offset_of.end()) {
        ++plan.chunks_from_previous;
        plan.bytes_from_previous += c.length;
        auto& copies = plan.base_copies;
        if (!copies.empty() && copies.back().dst_offset + copies.back().length == c.offset &&
            copies.back().src_offset + copies.back().length == it->second) {
          copies.back().length += c.length;
        } else {
          copies.push_back({it->second, c.offset, c.length});
        }
        continue;
      }
    }
    plan.cache_chunks.push_back(i);
    plan.max_chunk_bytes = std::max(plan.max_chunk_bytes, c.length);
    if (c.delta) plan.max_base_bytes = std::max(plan.max_base_bytes, c.base_length);
  }
  return plan;
}

}  // namespace modelswap::cache
