// BackgroundHasher: a bounded producer/consumer ring with one mutex. Chunks are large (about a
// MiB), so one lock and one wake-up per chunk cost nothing next to hashing it.
#include "sidecar/snapshot/background_hasher.h"

namespace modelswap::snapshot {

BackgroundHasher::BackgroundHasher(size_t chunk_bytes, size_t depth) : chunk_bytes_(chunk_bytes) {
  for (size_t i = 0; i < depth; ++i) {
    buffers_.push_back(std::make_unique_for_overwrite<std::byte[]>(chunk_bytes));
    free_.push_back(i);
  }
  thread_ = std::thread([this] { Run(); });
}

BackgroundHasher::~BackgroundHasher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  changed_.notify_all();
  thread_.join();
}

std::span<std::byte> BackgroundHasher::Acquire() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return !free_.empty(); });
  acquired_ = free_.front();
  free_.pop_front();
  return {buffers_[acquired_].get(), chunk_bytes_};
}

void BackgroundHasher::Submit(size_t n) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({acquired_, n});
  }
  changed_.notify_all();
}

uint64_t BackgroundHasher::Finish() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
  // The hasher's last Update happened before it cleared busy_ under mu_, which we now hold.
  return hash_.Digest();
}

void BackgroundHasher::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    changed_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const Job job = queue_.front();
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    hash_.Update(std::span(buffers_[job.buffer].get(), job.bytes));
    lock.lock();
    busy_ = false;
    free_.push_back(job.buffer);
    changed_.notify_all();
  }
}

}  // namespace modelswap::snapshot
