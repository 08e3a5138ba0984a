// Building and verifying one assembled version file (version_builder.h).
#include "sidecar/cache/version_builder.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "sidecar/cache/access_history.h"
#include "sidecar/cache/cache_layout.h"
#include "sidecar/cache/delta_base.h"
#include "sidecar/cache/durability.h"
#include "sidecar/cache/file_ops.h"
#include "sidecar/volume/version_file.h"

namespace modelswap::cache {
namespace {

double Seconds(Env* env, int64_t since_ns) {
  return static_cast<double>(env->NowMonotonicNanos() - since_ns) / 1e9;
}

// Progress from several threads, one callback at a time. Byte counts are atomics with relaxed
// order: they are only summed for reporting, and the mutex orders the callback calls.
class ProgressReporter {
 public:
  ProgressReporter(const ProgressFn& fn, uint64_t total) : fn_(fn), total_(total) {}
  void Add(std::string_view phase, uint64_t bytes) {
    uint64_t done = done_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (!fn_) return;
    std::lock_guard<std::mutex> lock(mu_);
    fn_(AssembleProgress{phase, done, total_});
  }

 private:
  const ProgressFn& fn_;
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
};

// The cache-chunk part: fetch_threads workers take chunk indices from a shared counter, read each
// chunk through the chunk cache and pwrite it at its offset, while the calling thread copies the
// ranges shared with the previous version (disjoint byte ranges of the same file: pwrite and
// copy_file_range need no lock between them). A delta entry not in the chunk cache first gets
// its base's bytes (delta_base.h; reading the held previous version's fd, which the copy also
// reads: pread and copy_file_range take explicit offsets). The first error stops the others.
class ChunkFiller {
 public:
  ChunkFiller(Env* env, const CacheOptions& o, const chunk::Recipe& r, const ChunkSourceFn& fetch,
              const AssemblyPlan& plan, const BaseVersion* previous, int fd,
              const std::string& path, ProgressReporter* progress)
      : env_(env),
        cache_(env, o.dir, o.correlated_period_ns),
        recipe_(r),
        fetch_(fetch),
        plan_(plan),
        previous_(previous),
        fd_(fd),
        path_(path),
        progress_(progress) {}

  // Starts `threads` workers (at least one) and returns at once: the caller copies from the
  // previous version meanwhile, so the throttled fetches overlap the local copy.
  void Start(int threads) {
    started_ns_ = env_->NowMonotonicNanos();
    threads = std::max(1, std::min<int>(threads, static_cast<int>(plan_.cache_chunks.size())));
    for (int t = 0; t < threads; ++t)
      pool_.emplace_back([this] { Work(); });
  }

  // Makes the workers stop after their current chunk (the caller's copy failed).
  void Cancel() { failed_.store(true, std::memory_order_release); }

  // Waits for the workers; the first worker error, else the counts added to *stats.
  Status Join(AssembleStats* stats) {
    for (auto& th : pool_)
      th.join();
    pool_.clear();
    // After join(): error_ and finished_ns_ are ours alone.
    if (error_) return Fail(*error_);
    stats->fetch_seconds = static_cast<double>(finished_ns_ - started_ns_) / 1e9;
    stats->chunks_fetched += fetched_.load(std::memory_order_relaxed);
    stats->bytes_fetched += bytes_fetched_.load(std::memory_order_relaxed);
    stats->chunks_from_cache += cached_.load(std::memory_order_relaxed);
    stats->bytes_from_cache += bytes_cached_.load(std::memory_order_relaxed);
    stats->refetches += refetches_.load(std::memory_order_relaxed);
    stats->delta_chunks_fetched += delta_fetched_.load(std::memory_order_relaxed);
    stats->bases_from_cache += bases_cached_.load(std::memory_order_relaxed);
    stats->bases_from_previous += bases_previous_.load(std::memory_order_relaxed);
    stats->bases_fetched += bases_fetched_.load(std::memory_order_relaxed);
    stats->base_bytes_fetched += base_bytes_fetched_.load(std::memory_order_relaxed);
    return Ok();
  }

  ~ChunkFiller() {
    Cancel();
    for (auto& th : pool_)
      th.join();
  }

 private:
  void Work() {
    WorkLoop();
    std::lock_guard<std::mutex> lock(mu_);
    finished_ns_ = std::max(finished_ns_, env_->NowMonotonicNanos());
  }

  void WorkLoop() {
    std::vector<std::byte> buf(plan_.max_chunk_bytes);
    std::vector<std::byte> base_buf(plan_.max_base_bytes);
    // relaxed: the counter only hands out distinct indices; failed_ is read with acquire so a
    // worker that sees it stops early (a stale read only costs one more chunk).
    for (size_t k;
         (k = next_.fetch_add(1, std::memory_order_relaxed)) < plan_.cache_chunks.size();) {
      if (failed_.load(std::memory_order_acquire)) return;
      const chunk::RecipeChunk& c = recipe_.chunks[plan_.cache_chunks[k]];
      std::span<std::byte> out(buf.data(), c.length);
      Status st = FillOne(c, out, base_buf);
      if (!st) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_.emplace(st.error());
        failed_.store(true, std::memory_order_release);
        return;
      }
      progress_->Add("chunks", c.length);
    }
  }

  Status FillOne(const chunk::RecipeChunk& c, std::span<std::byte> out,
                 std::span<std::byte> base_buf) {
    std::span<const std::byte> base;
    if (c.delta) {
      // Cached, a delta entry needs no base: look before finding one.
      if (cache_.Lookup(c.hash, out)) return Write(c, ChunkGet{ChunkOrigin::kCache, 0}, out);
      std::span<std::byte> b = base_buf.first(c.base_length);
      if (Status st = FindBase(c, b); !st) return Fail(st.error().Context(Where(c)));
      base = b;
    }
    auto got = cache_.Get(c, base, out, fetch_);
    if (!got) return Fail(got.error().Context(Where(c)));
    return Write(c, *got, out);
  }

  // The base's bytes into out, counted by where they came from.
  Status FindBase(const chunk::RecipeChunk& c, std::span<std::byte> out) {
    MS_ASSIGN_OR_RETURN(BaseRead b, ReadDeltaBase(env_, &cache_, previous_, c, out, fetch_));
    switch (b.origin) {
      case BaseOrigin::kCache:
        bases_cached_.fetch_add(1, std::memory_order_relaxed);
        break;
      case BaseOrigin::kPrevious:
        bases_previous_.fetch_add(1, std::memory_order_relaxed);
        break;
      case BaseOrigin::kFetched:
        bases_fetched_.fetch_add(1, std::memory_order_relaxed);
        base_bytes_fetched_.fetch_add(c.base_length, std::memory_order_relaxed);
        refetches_.fetch_add(static_cast<uint64_t>(b.fetches - 1), std::memory_order_relaxed);
        break;
    }
    return Ok();
  }

  std::string Where(const chunk::RecipeChunk& c) const {
    return recipe_.model + "/" + recipe_.version + " at offset " + std::to_string(c.offset);
  }

  // Counts where the entry came from and writes it at its offset.
  Status Write(const chunk::RecipeChunk& c, const ChunkGet& got, std::span<const std::byte> out) {
    if (got.origin == ChunkOrigin::kFetched) {
      fetched_.fetch_add(1, std::memory_order_relaxed);
      bytes_fetched_.fetch_add(c.length, std::memory_order_relaxed);
      refetches_.fetch_add(static_cast<uint64_t>(got.fetches - 1), std::memory_order_relaxed);
      if (c.delta) delta_fetched_.fetch_add(1, std::memory_order_relaxed);
    } else {
      cached_.fetch_add(1, std::memory_order_relaxed);
      bytes_cached_.fetch_add(c.length, std::memory_order_relaxed);
    }
    return env_->PWrite(fd_, out, c.offset);
  }

  Env* env_;
  ChunkCache cache_;
  const chunk::Recipe& recipe_;
  const ChunkSourceFn& fetch_;
  const AssemblyPlan& plan_;
  const BaseVersion* previous_;  // may be null
  int fd_;
  const std::string& path_;
  ProgressReporter* progress_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::vector<std::thread> pool_;
  int64_t started_ns_ = 0;
  std::mutex mu_;  // guards error_ and finished_ns_ while workers run
  std::optional<Error> error_;
  int64_t finished_ns_ = 0;
  // Counters: relaxed, read after join() (which orders them).
  std::atomic<uint64_t> fetched_{0}, bytes_fetched_{0}, cached_{0}, bytes_cached_{0}, refetches_{0};
  std::atomic<uint64_t> delta_fetched_{0}, bases_cached_{0}, bases_previous_{0}, bases_fetched_{0},
      base_bytes_fetched_{0};
};

// Up to this many bytes per CopyRange call when copying on several threads: small enough to
// spread a 2 GiB run over the threads, large enough that the call overhead is nothing. A multiple
// of any block size, so splitting a run never costs a reflink its alignment.
constexpr uint64_t kCopyPieceBytes = 16 << 20;

// The ranges shared with the previous version, copied by `threads` threads (this one included;
// copy_file_range copies through the page cache on one CPU per call, so one thread could not
// keep up with the disk, bench/cache/cache_bench.cc). The pieces are disjoint ranges of the
// temp: no lock between writers. The first error stops the others.
Status CopyFromBase(const AssemblyPlan& plan, BaseVersion* base, int fd,
                    const std::string& temp_path, int threads, CopyState* copy,
                    ProgressReporter* reporter) {
  std::vector<AssemblyPlan::BaseCopy> pieces;
  for (const auto& c : plan.base_copies) {
    for (uint64_t done = 0; done < c.length; done += kCopyPieceBytes) {
      pieces.push_back(
          {c.src_offset + done, c.dst_offset + done, std::min(kCopyPieceBytes, c.length - done)});
    }
  }
  if (pieces.empty()) return Ok();
  // relaxed: `next` only hands out distinct pieces; `failed` is a hint to stop early (the error
  // itself is under `mu`, read after the joins).
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::optional<Error> error;
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < pieces.size();) {
      if (failed.load(std::memory_order_relaxed)) return;
      const auto& c = pieces[k];
      Status st =
          CopyRange(base->hold.fd(), c.src_offset, fd, c.dst_offset, c.length, temp_path, copy);
      if (!st) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error.emplace(st.error());
        failed.store(true, std::memory_order_relaxed);
        return;
      }
      reporter->Add("previous", c.length);
    }
  };
  threads = std::max(1, std::min<int>(threads, static_cast<int>(pieces.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back(work);
  work();
  for (auto& th : pool)
    th.join();
  if (error) return Fail(*error);
  return Ok();
}

Status FillFile(Env* env, const CacheOptions& o, const chunk::Recipe& recipe,
                const ChunkSourceFn& fetch, const ProgressFn& progress, BaseVersion* base, int fd,
                const std::string& temp_path, AssembleStats* stats) {
  // Sparse from the start: holes are never written, so they stay unallocated.
  MS_RETURN_IF_ERROR(env->Truncate(fd, recipe.file_bytes));
  int64_t plan_start = env->NowMonotonicNanos();
  AssemblyPlan plan = MakePlan(recipe, base);
  stats->plan_seconds = Seconds(env, plan_start);
  stats->chunks_from_previous = plan.chunks_from_previous;
  stats->bytes_from_previous = plan.bytes_from_previous;
  stats->holes = plan.holes;
  stats->hole_bytes = plan.hole_bytes;
  stats->previous_version = base != nullptr && plan.chunks_from_previous > 0 ? base->version : "";
  ProgressReporter reporter(progress, recipe.file_bytes - plan.hole_bytes);

  // Workers fetch while this thread copies; a copy error cancels them, a fetch error stops
  // them; either way the temp is never published (the caller removes it).
  int64_t fill_start = env->NowMonotonicNanos();
  std::optional<ChunkFiller> filler;
  if (!plan.cache_chunks.empty()) {
    filler.emplace(env, o, recipe, fetch, plan, base, fd, temp_path, &reporter);
    filler->Start(o.fetch_threads);
  }
  CopyState copy;
  Status copied = CopyFromBase(plan, base, fd, temp_path, o.copy_threads, &copy, &reporter);
  stats->copy_seconds = Seconds(env, fill_start);
  if (!copied && filler) filler->Cancel();
  Status fetched = filler ? filler->Join(stats) : Ok();
  MS_RETURN_IF_ERROR(copied);
  MS_RETURN_IF_ERROR(fetched);
  stats->fill_seconds = Seconds(env, fill_start);
  stats->bytes_reflinked = copy.bytes_cloned.load(std::memory_order_relaxed);
  stats->reflink_used = stats->bytes_reflinked > 0;

  int64_t t = env->NowMonotonicNanos();
  MS_RETURN_IF_ERROR(MakeDurableOrMark(env, fd, temp_path, &stats->fsync_deferred));
  stats->fsync_seconds = Seconds(env, t);
  MS_RETURN_IF_ERROR(InitAccessHistory(fd, temp_path, env->NowUnixNanos()));
  return MakeReadOnly(fd, temp_path);
}

}  // namespace

Status VerifyAssembled(Env* env, const std::string& path, const chunk::Recipe& recipe) {
  auto file = OpenModelFile(env, path, msf::VerifyLevel::kFull);
  std::string what = "assembled " + recipe.model + "/" + recipe.version + ": ";
  if (!file) return Fail(Code::kCorruption, what + file.error().message());
  const msf::Header& h = file->reader.header();
  if (h.header_checksum != recipe.msf_checksum) {
    return Fail(Code::kCorruption,
                what + "header checksum xxh3:" + ChecksumHex(h.header_checksum) +
                    " is not the recipe's xxh3:" + ChecksumHex(recipe.msf_checksum));
  }
  if (h.model != recipe.model || h.version != recipe.version) {
    return Fail(Code::kCorruption, what + "header names " + h.model + "/" + h.version);
  }
  if (h.file_size != recipe.file_bytes) {
    return Fail(Code::kCorruption, what + "size differs from the recipe's file_bytes");
  }
  return Ok();
}

Status BuildVersionFile(Env* env, const CacheOptions& options, const chunk::Recipe& recipe,
                        const ChunkSourceFn& fetch, const ProgressFn& progress, BaseVersion* base,
                        const std::string& temp_path, AssembleStats* stats) {
  *stats = AssembleStats{};
  stats->chunks_total = recipe.chunks.size();
  stats->bytes_total = recipe.file_bytes;
  MS_ASSIGN_OR_RETURN(int fd, env->Open(temp_path, OpenMode::kReadWriteNew));
  Status st = FillFile(env, options, recipe, fetch, progress, base, fd, temp_path, stats);
  env->Close(fd);
  return st;
}

}  // namespace modelswap::cache
