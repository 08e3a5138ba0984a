// Eviction passes over the agent's cache directory on their own thread (see cache_janitor.h).
#include "sidecar/agent/cache_janitor.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace modelswap::agent {

CacheJanitor::CacheJanitor(Env* env, CacheConfig config) : env_(env) {
  status_.config = std::move(config);
  thread_ = std::thread([this] { Run(); });
}

CacheJanitor::~CacheJanitor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CacheJanitor::Poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

CacheStatus CacheJanitor::Status() {
  std::lock_guard lock(mu_);
  return status_;
}

void CacheJanitor::Run() {
  const cache::CacheOptions options = status_.config.options;  // never changes after start
  const auto interval = std::chrono::nanoseconds(status_.config.interval_ns);
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, interval, [&] { return stop_ || poked_; });
    if (stop_) return;
    poked_ = false;
    lock.unlock();
    auto pass = cache::Evict(env_, options);
    lock.lock();
    status_.passes++;
    status_.last_at_unix_ns = env_->NowUnixNanos();
    if (!pass) {
      status_.pass_errors++;
      if (status_.last_error != pass.error().ToString()) {
        spdlog::warn("cache eviction failed dir={} err=\"{}\"", options.dir,
                     pass.error().ToString());
      }
      status_.last_error = pass.error().ToString();
      continue;
    }
    status_.last_error.clear();
    status_.last = *pass;
    status_.allocated_bytes = pass->bytes_after;
    status_.chunks_evicted += pass->chunks_evicted;
    status_.versions_evicted += pass->versions_evicted;
    status_.temps_removed += pass->temps_removed;
    if (pass->ran || pass->temps_removed > 0) {
      spdlog::info(
          "cache eviction dir={} bytes_before={} bytes_after={} target={} chunks={} versions={} "
          "temps={} skipped_held={} skipped_newest={} skipped_filling={}",
          options.dir, pass->bytes_before, pass->bytes_after, pass->target_bytes,
          pass->chunks_evicted, pass->versions_evicted, pass->temps_removed, pass->skipped_held,
          pass->skipped_newest, pass->skipped_filling);
    }
  }
}

}  // namespace modelswap::agent
