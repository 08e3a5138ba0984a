// Storing a built .msf as chunks and a recipe: markers, a bounded pool of compressing workers, the
// recipe published last. See chunked_upload.h for the order and why.
#include "sidecar/writer/chunked_upload.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/writer_marker.h"
#include "sidecar/writer/base_layout.h"

namespace modelswap {
namespace {

// How one chunk of the new version is stored: the recipe entry's storage fields.
struct Stored {
  uint32_t stored_length = 0;
  bool delta = false;
  DeltaBase base;  // only for a delta
};

// The verified bytes of the few bases read last, shared by the workers: neighbouring new chunks
// often share a base when an insertion shifts bytes across a chunk boundary. A base is read
// outside the lock, so two workers may read the same one once each; that costs a read, never a
// wrong byte (ChunkStore::Get checks the SHA-256).
class BaseCache {
 public:
  BaseCache(chunk::ChunkStore* store, size_t capacity) : store_(store), capacity_(capacity) {}

  Result<std::shared_ptr<const std::vector<std::byte>>> Get(const DeltaBase& base) {
    {
      std::lock_guard lock(mu_);
      for (const auto& [hash, bytes] : recent_) {
        if (hash == base.hash) return bytes;
      }
    }
    auto bytes = std::make_shared<std::vector<std::byte>>(base.length);
    MS_RETURN_IF_ERROR(store_->Get(base.hash, *bytes));
    std::lock_guard lock(mu_);
    recent_.emplace_back(base.hash, bytes);
    if (recent_.size() > capacity_) recent_.pop_front();
    return bytes;
  }

 private:
  chunk::ChunkStore* store_;
  size_t capacity_;
  std::mutex mu_;
  std::deque<std::pair<chunk::ChunkHash, std::shared_ptr<const std::vector<std::byte>>>>
      recent_;  // guarded by mu_, oldest first
};

// Stores chunks on `threads` workers; the cutting thread hands them over through a queue bounded
// at 2 * threads, so memory stays bounded and the cutter waits when compression falls behind.
// A chunk with a base is first tried as a delta chunk (on the worker, so delta compression is as
// parallel as whole-chunk compression), then stored whole if the delta does not pay.
class StorePool {
 public:
  StorePool(chunk::ChunkStore* store, int threads, int zstd_level)
      : store_(store), zstd_level_(zstd_level), bases_(store, static_cast<size_t>(4 * threads)) {
    const int n = std::max(1, threads);
    limit_ = static_cast<size_t>(n) * 2;
    for (int i = 0; i < n; ++i)
      workers_.emplace_back([this] { Work(); });
  }
  ~StorePool() { (void)Finish(); }

  // Queues chunk number `index` (its bytes stay valid until Finish: they live in the mapping),
  // to be stored against `base` when that pays.
  Status Submit(size_t index, const chunk::ChunkHash& hash, std::span<const std::byte> bytes,
                std::optional<DeltaBase> base) {
    std::unique_lock lock(mu_);
    space_.wait(lock, [&] { return queue_.size() < limit_ || !error_.has_value(); });
    if (!error_.has_value()) return error_;
    queue_.push_back(Job{index, hash, bytes, base});
    work_.notify_one();
    return Ok();
  }

  // Waits for every queued chunk; the first error of any worker.
  Status Finish() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    work_.notify_all();
    for (std::thread& t : workers_) {
      if (t.joinable()) t.join();
    }
    std::lock_guard lock(mu_);
    return error_;
  }

  // Counters over the chunks stored; complete after Finish.
  struct Totals {
    uint64_t stored_bytes = 0;  // bytes of the files this pool wrote (not those found there)
    uint64_t chunks_delta = 0, bytes_delta = 0, stored_bytes_delta = 0;
  };
  Totals totals() const {
    std::lock_guard lock(mu_);
    return totals_;
  }
  // (chunk number, how it is stored) of every chunk stored; complete after Finish.
  std::vector<std::pair<size_t, Stored>> stored() const {
    std::lock_guard lock(mu_);
    return stored_;
  }

 private:
  struct Job {
    size_t index;
    chunk::ChunkHash hash;
    std::span<const std::byte> bytes;
    std::optional<DeltaBase> base;
  };
  struct Outcome {
    Stored stored;
    bool written = false;  // false: the file was there already (a racing writer)
  };

  // The chunk as a delta against its base, or nullopt when that does not save half its bytes
  // (or the base cannot be read: the chunk is then stored whole, which is always correct).
  Result<std::optional<Outcome>> StoreDelta(const Job& job) {
    auto base = bases_.Get(*job.base);
    if (!base) {
      spdlog::warn("write: base chunk {} of chunk {} not readable, storing the chunk whole: {}",
                   chunk::ToHex(job.base->hash), chunk::ToHex(job.hash), base.error().ToString());
      return std::nullopt;
    }
    MS_ASSIGN_OR_RETURN(auto put, store_->PutDelta(job.hash, job.bytes, job.base->hash, **base,
                                                   zstd_level_, job.bytes.size() / 2));
    if (!put) return std::nullopt;
    return Outcome{Stored{put->stored_length, true, *job.base}, put->stored};
  }

  Result<Outcome> StoreOne(const Job& job) {
    if (job.base) {
      MS_ASSIGN_OR_RETURN(std::optional<Outcome> delta, StoreDelta(job));
      if (delta) return *delta;
    }
    MS_ASSIGN_OR_RETURN(chunk::PutResult put, store_->Put(job.hash, job.bytes, zstd_level_));
    return Outcome{Stored{put.stored_length, false, {}}, put.stored};
  }

  void Work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        work_.wait(lock, [&] { return !queue_.empty() || closing_ || !error_.has_value(); });
        if (!error_.has_value() || queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
      }
      space_.notify_one();
      auto out = StoreOne(job);
      std::lock_guard lock(mu_);
      if (!out) {
        if (error_.has_value()) error_ = Fail(out.error());
        space_.notify_all();
        work_.notify_all();
        return;
      }
      stored_.emplace_back(job.index, out->stored);
      if (out->written) totals_.stored_bytes += out->stored.stored_length;
      if (out->stored.delta) {
        ++totals_.chunks_delta;
        totals_.bytes_delta += job.bytes.size();
        if (out->written) totals_.stored_bytes_delta += out->stored.stored_length;
      }
    }
  }

  chunk::ChunkStore* store_;
  int zstd_level_;
  BaseCache bases_;
  size_t limit_ = 2;
  mutable std::mutex mu_;
  std::condition_variable work_, space_;
  std::deque<Job> queue_;
  bool closing_ = false;
  Status error_ = Ok();
  Totals totals_;
  std::vector<std::pair<size_t, Stored>> stored_;
  std::vector<std::thread> workers_;
};

// The size of a chunk file already in the store (the recipe records it); rel beneath root.
Result<uint32_t> StoredLength(Env* env, const std::string& root, const std::string& rel) {
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, rel, OpenMode::kRead));
  auto info = env->StatFd(fd);
  env->Close(fd);
  if (!info) return Fail(info.error());
  return static_cast<uint32_t>(std::min<uint64_t>(info->size, UINT32_MAX));
}

// The base version's recipe when the new chunks may be stored as deltas against its chunks: not
// when deltas are off, there is no base, or the base is a whole-file version.
Result<std::optional<chunk::Recipe>> BaseRecipe(Env* env, const std::string& root,
                                                const std::string& model,
                                                const ChunkedUploadOptions& options) {
  if (options.base_version.empty() || !options.chunk_deltas) return std::nullopt;
  const std::string rel = chunk::RecipeRel(model, options.base_version);
  auto recipe = chunk::ReadRecipeBeneath(env, root, rel);
  if (!recipe && recipe.error().code() == Code::kNotFound) {
    spdlog::info("write: base version {} is a whole file: no delta chunks", options.base_version);
    return std::nullopt;
  }
  if (!recipe) return Fail(recipe.error().Context("base version " + options.base_version));
  if (recipe->model != model || recipe->version != options.base_version) {
    return Fail(Code::kCorruption,
                "base recipe " + rel + " names " + recipe->model + "/" + recipe->version);
  }
  return std::move(*recipe);
}

// A writer marker, retried while a GC holds the store (CreateWriterMarker: kUnavailable).
Result<std::string> AcquireWriterMarker(Env* env, const std::string& root, const std::string& model,
                                        const std::string& version, int64_t wait_ns) {
  const int64_t deadline = env->NowMonotonicNanos() + wait_ns;
  int64_t pause = 1'000'000'000;
  for (;;) {
    auto marker = chunk::CreateWriterMarker(env, root, model, version);
    if (marker || marker.error().code() != Code::kUnavailable) return marker;
    if (env->NowMonotonicNanos() + pause > deadline) {
      return Fail(marker.error().Context("the chunk store is held by a garbage collection"));
    }
    spdlog::info("write waiting for a chunk garbage collection to finish");
    env->SleepForNanos(pause);
    pause = std::min<int64_t>(pause * 2, 30'000'000'000);
  }
}

Status WriteRecipe(Env* env, const std::string& root, const std::string& model,
                   const std::string& version, const chunk::Recipe& recipe) {
  const std::string dir = VersionsDir(root, model);
  const std::string tmp_name = ".tmp-" + chunk::RecipeFileName(version) + "-" +
                               std::to_string(::getpid()) + "-" +
                               std::to_string(env->NowUnixNanos());
  const std::string encoded = chunk::EncodeRecipe(recipe);
  MS_ASSIGN_OR_RETURN(
      int fd, env->OpenBeneath(root, model + "/versions/" + tmp_name, OpenMode::kReadWriteNew));
  Status st = env->PWrite(fd, std::as_bytes(std::span(encoded)), 0);
  if (st) st = env->Fsync(fd);
  env->Close(fd);
  const std::string tmp = JoinPath(dir, tmp_name);
  if (st) st = env->RenameNoReplace(tmp, JoinPath(dir, chunk::RecipeFileName(version)));
  if (!st) {
    (void)env->Remove(tmp);
    return st;
  }
  return env->FsyncDir(dir);
}

}  // namespace

Result<ChunkedUploadResult> UploadChunked(Env* env, const std::string& root,
                                          const std::string& model, const std::string& version,
                                          const std::string& msf_path, uint64_t msf_checksum,
                                          const ChunkedUploadOptions& options) {
  MS_RETURN_IF_ERROR(chunk::ValidateParams(options.params));
  const std::string recipe_path =
      JoinPath(VersionsDir(root, model), chunk::RecipeFileName(version));
  if (env->Stat(recipe_path)) {
    return Fail(Code::kAlreadyExists,
                recipe_path + " already exists; published versions are never overwritten");
  }
  MS_ASSIGN_OR_RETURN(std::optional<chunk::Recipe> base_recipe,
                      BaseRecipe(env, root, model, options));
  MS_ASSIGN_OR_RETURN(auto mapping, env->MapReadOnly(msf_path));
  // Puts skip their own fsyncs; one Sync() makes every chunk durable before the recipe exists
  // (on a local disk a fsync per 64 KiB file, not the CPU, bounds the write).
  chunk::ChunkStore store(env, root, chunk::ChunkStore::Options{.defer_sync = true});
  std::optional<DeltaBasePicker> bases;
  if (base_recipe) {
    MS_ASSIGN_OR_RETURN(bases,
                        DeltaBasePicker::Create(&store, std::move(*base_recipe), mapping->bytes()));
  }
  MS_ASSIGN_OR_RETURN(std::string marker,
                      AcquireWriterMarker(env, root, model, version, options.gc_wait_ns));
  ChunkedUploadResult result;
  result.recipe_path = recipe_path;
  // How each chunk is stored, by chunk number (non-hole chunks in file order): here for chunks
  // the store had, from the pool's results for uploads.
  std::vector<Stored> stored;
  std::unordered_set<chunk::ChunkHash> seen;  // a chunk repeated within this file uploads once
  int64_t last_refresh = env->NowMonotonicNanos();
  auto recipe = [&]() -> Result<chunk::Recipe> {
    StorePool pool(&store, options.threads, options.zstd_level);
    size_t index = 0;
    auto sink = [&](const chunk::RecipeChunk& c,
                    std::span<const std::byte> bytes) -> Result<uint32_t> {
      // The cutter hands over only non-hole chunks, in file order: chunk numbers count those.
      // Compression finishes later, on the pool: the length returned here is provisional (the
      // chunk's own length, a valid bound) and every one is replaced once the pool is done.
      const size_t i = index++;
      stored.emplace_back();
      if (options.on_progress) options.on_progress(c.offset + c.length);
      if (env->NowMonotonicNanos() - last_refresh > chunk::kGcMarkerRefreshNs) {
        MS_RETURN_IF_ERROR(chunk::RefreshMarker(env, root, marker));
        last_refresh = env->NowMonotonicNanos();
      }
      if (!seen.insert(c.hash).second) {
        result.bytes_reused += c.length;
        return c.length;
      }
      MS_ASSIGN_OR_RETURN(bool present, store.Has(c.hash));
      if (present) {
        MS_ASSIGN_OR_RETURN(stored[i].stored_length,
                            StoredLength(env, root, chunk::ChunkRel(c.hash)));
        result.bytes_reused += c.length;
        return c.length;
      }
      std::optional<DeltaBase> base;
      if (bases) base = bases->Pick(c.offset, c.length);
      if (base && base->hash == c.hash) base.reset();  // the base's own chunk went missing
      if (base) {
        // Stored against this base already (a retried write, or another writer of the same
        // content): nothing to compute or upload.
        MS_ASSIGN_OR_RETURN(bool has_delta, store.HasDelta(c.hash, base->hash));
        if (has_delta) {
          MS_ASSIGN_OR_RETURN(uint32_t length,
                              StoredLength(env, root, chunk::DeltaChunkRel(c.hash, base->hash)));
          stored[i] = Stored{length, true, *base};
          result.bytes_reused += c.length;
          return c.length;
        }
      }
      ++result.chunks_new;
      result.bytes_new += c.length;
      MS_RETURN_IF_ERROR(pool.Submit(i, c.hash, bytes, base));
      return c.length;
    };
    auto cut =
        chunk::ChunkBytes(mapping->bytes(), model, version, msf_checksum, options.params, sink);
    Status finished = pool.Finish();
    if (!cut) return cut;
    MS_RETURN_IF_ERROR(finished);
    MS_RETURN_IF_ERROR(store.Sync());
    const StorePool::Totals totals = pool.totals();
    result.stored_bytes_new = totals.stored_bytes;
    result.chunks_delta = totals.chunks_delta;
    result.bytes_delta = totals.bytes_delta;
    result.stored_bytes_delta = totals.stored_bytes_delta;
    for (const auto& [i, how] : pool.stored())
      stored[i] = how;
    // A repeat is stored the way its first occurrence was.
    std::unordered_map<chunk::ChunkHash, Stored> first;
    size_t n = 0;
    for (chunk::RecipeChunk& c : cut->chunks) {
      if (c.hole) continue;
      first.emplace(c.hash, stored[n++]);
    }
    for (chunk::RecipeChunk& c : cut->chunks) {
      if (c.hole) {
        ++result.holes;
        result.bytes_holes += c.length;
        continue;
      }
      const Stored& how = first.at(c.hash);
      c.stored_length = how.stored_length;
      c.delta = how.delta;
      if (how.delta) {
        c.base_hash = how.base.hash;
        c.base_length = how.base.length;
      }
    }
    result.chunks_total = cut->chunks.size();
    return cut;
  }();
  Status st = recipe ? WriteRecipe(env, root, model, version, *recipe) : Fail(recipe.error());
  if (auto removed = chunk::RemoveMarker(env, root, marker); !removed) {
    spdlog::warn("write could not remove its marker {}: {}", marker, removed.error().ToString());
  }
  MS_RETURN_IF_ERROR(st);
  spdlog::info(
      "write model={} version={} chunks={} new={} delta={} holes={} bytes_new={} bytes_reused={} "
      "stored_new={} stored_delta={}",
      model, version, result.chunks_total, result.chunks_new, result.chunks_delta, result.holes,
      result.bytes_new, result.bytes_reused, result.stored_bytes_new, result.stored_bytes_delta);
  return result;
}

Result<chunk::Recipe> CheckChunkedVersion(Env* env, const std::string& root,
                                          const std::string& model, const std::string& version) {
  MS_ASSIGN_OR_RETURN(chunk::Recipe recipe,
                      chunk::ReadRecipeBeneath(env, root, chunk::RecipeRel(model, version)));
  if (recipe.model != model || recipe.version != version) {
    return Fail(Code::kCorruption, "recipe " + chunk::RecipeRel(model, version) + " names " +
                                       recipe.model + "/" + recipe.version);
  }
  chunk::ChunkStore store(env, root);
  std::unordered_set<chunk::ChunkHash> checked;
  auto missing = [&](const chunk::RecipeChunk& c, const std::string& what) {
    return Fail(Code::kNotFound, "recipe " + chunk::RecipeRel(model, version) + " names chunk " +
                                     chunk::ToHex(c.hash) + " (offset " + std::to_string(c.offset) +
                                     ")" + what + ", which is not in the store");
  };
  for (const chunk::RecipeChunk& c : recipe.chunks) {
    if (c.hole) continue;
    if (c.delta) {
      // The delta file and its base, stored whole: what the GC keeps for a delta entry (a
      // whole <H> another writer stored is not kept for this recipe, so it does not count).
      MS_ASSIGN_OR_RETURN(bool delta_present, store.HasDelta(c.hash, c.base_hash));
      if (!delta_present) return missing(c, " as a delta on " + chunk::ToHex(c.base_hash));
      if (!checked.insert(c.base_hash).second) continue;
      MS_ASSIGN_OR_RETURN(bool base_present, store.Has(c.base_hash));
      if (!base_present) {
        return Fail(Code::kNotFound, "recipe " + chunk::RecipeRel(model, version) +
                                         " names delta chunk " + chunk::ToHex(c.hash) +
                                         " (offset " + std::to_string(c.offset) + ") on base " +
                                         chunk::ToHex(c.base_hash) + ", which is not in the store");
      }
      continue;
    }
    if (!checked.insert(c.hash).second) continue;
    MS_ASSIGN_OR_RETURN(bool present, store.Has(c.hash));
    if (!present) return missing(c, "");
  }
  return recipe;
}

}  // namespace modelswap
