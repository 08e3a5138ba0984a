// Storing a built .msf as chunks and a recipe: markers, a bounded pool of compressing workers, the
// recipe published last. See chunked_upload.h for the order and why.
#include "sidecar/writer/chunked_upload.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/writer_marker.h"

namespace modelswap {
namespace {

// Stores chunks on `threads` workers; the cutting thread hands them over through a queue bounded
// at 2 * threads, so memory stays bounded and the cutter waits when compression falls behind.
class StorePool {
 public:
  StorePool(chunk::ChunkStore* store, int threads, int zstd_level)
      : store_(store), zstd_level_(zstd_level) {
    const int n = std::max(1, threads);
    limit_ = static_cast<size_t>(n) * 2;
    for (int i = 0; i < n; ++i)
      workers_.emplace_back([this] { Work(); });
  }
  ~StorePool() { (void)Finish(); }

  // Queues chunk number `index` (its bytes stay valid until Finish: they live in the mapping).
  Status Submit(size_t index, const chunk::ChunkHash& hash, std::span<const std::byte> bytes) {
    std::unique_lock lock(mu_);
    space_.wait(lock, [&] { return queue_.size() < limit_ || !error_.has_value(); });
    if (!error_.has_value()) return error_;
    queue_.push_back(Job{index, hash, bytes});
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

  uint64_t stored_bytes() const {
    std::lock_guard lock(mu_);
    return stored_bytes_;
  }
  // (chunk number, stored length) of every chunk stored; complete after Finish.
  std::vector<std::pair<size_t, uint32_t>> stored_lengths() const {
    std::lock_guard lock(mu_);
    return stored_lengths_;
  }

 private:
  struct Job {
    size_t index;
    chunk::ChunkHash hash;
    std::span<const std::byte> bytes;
  };

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
      auto put = store_->Put(job.hash, job.bytes, zstd_level_);
      std::lock_guard lock(mu_);
      if (!put) {
        if (error_.has_value()) error_ = Fail(put.error());
        space_.notify_all();
        work_.notify_all();
        return;
      }
      stored_lengths_.emplace_back(job.index, put->stored_length);
      if (put->stored) stored_bytes_ += put->stored_length;
    }
  }

  chunk::ChunkStore* store_;
  int zstd_level_;
  size_t limit_ = 2;
  mutable std::mutex mu_;
  std::condition_variable work_, space_;
  std::deque<Job> queue_;
  bool closing_ = false;
  Status error_ = Ok();
  uint64_t stored_bytes_ = 0;
  std::vector<std::pair<size_t, uint32_t>> stored_lengths_;
  std::vector<std::thread> workers_;
};

// The stored size of a chunk already in the store (the recipe records it).
Result<uint32_t> StoredLength(Env* env, const std::string& root, const chunk::ChunkHash& hash) {
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, chunk::ChunkRel(hash), OpenMode::kRead));
  auto info = env->StatFd(fd);
  env->Close(fd);
  if (!info) return Fail(info.error());
  return static_cast<uint32_t>(std::min<uint64_t>(info->size, UINT32_MAX));
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
  MS_ASSIGN_OR_RETURN(auto mapping, env->MapReadOnly(msf_path));
  MS_ASSIGN_OR_RETURN(std::string marker,
                      AcquireWriterMarker(env, root, model, version, options.gc_wait_ns));
  // Puts skip their own fsyncs; one Sync() makes every chunk durable before the recipe exists
  // (on a local disk a fsync per 64 KiB file, not the CPU, bounds the write).
  chunk::ChunkStore store(env, root, chunk::ChunkStore::Options{.defer_sync = true});
  ChunkedUploadResult result;
  result.recipe_path = recipe_path;
  // Stored lengths by chunk number (non-hole chunks in file order): here for chunks the store
  // had, from the pool's results for uploads.
  std::vector<uint32_t> stored;
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
      stored.push_back(0);
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
        MS_ASSIGN_OR_RETURN(stored[i], StoredLength(env, root, c.hash));
        result.bytes_reused += c.length;
        return stored[i];
      }
      ++result.chunks_new;
      result.bytes_new += c.length;
      MS_RETURN_IF_ERROR(pool.Submit(i, c.hash, bytes));
      return c.length;
    };
    auto cut =
        chunk::ChunkBytes(mapping->bytes(), model, version, msf_checksum, options.params, sink);
    Status finished = pool.Finish();
    if (!cut) return cut;
    MS_RETURN_IF_ERROR(finished);
    MS_RETURN_IF_ERROR(store.Sync());
    result.stored_bytes_new = pool.stored_bytes();
    for (auto [i, length] : pool.stored_lengths())
      stored[i] = length;
    // A repeat takes the stored length its first occurrence got.
    std::unordered_map<chunk::ChunkHash, uint32_t> first;
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
      c.stored_length = first.at(c.hash);
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
      "write model={} version={} chunks={} new={} holes={} bytes_new={} bytes_reused={} "
      "stored_new={}",
      model, version, result.chunks_total, result.chunks_new, result.holes, result.bytes_new,
      result.bytes_reused, result.stored_bytes_new);
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
  for (const chunk::RecipeChunk& c : recipe.chunks) {
    if (c.hole || !checked.insert(c.hash).second) continue;
    MS_ASSIGN_OR_RETURN(bool present, store.Has(c.hash));
    if (!present) {
      return Fail(Code::kNotFound, "recipe " + chunk::RecipeRel(model, version) + " names chunk " +
                                       chunk::ToHex(c.hash) + " (offset " +
                                       std::to_string(c.offset) + "), which is not in the store");
    }
  }
  return recipe;
}

}  // namespace modelswap
