// BackgroundHasher: a bounded producer/consumer queue with one mutex. Chunks are large (about a
// MiB), so one lock and one wake-up per chunk cost nothing next to hashing it.
#include "sidecar/snapshot/background_hasher.h"

#include <algorithm>
#include <string>

namespace modelswap::snapshot {
namespace {
alignas(64) const std::byte kZeros[64 * 1024] = {};
}  // namespace

BackgroundHasher::BackgroundHasher(size_t chunk_bytes, Env* env, size_t depth)
    : chunk_bytes_(chunk_bytes), env_(env) {
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

void BackgroundHasher::Push(Job job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(job);
  }
  changed_.notify_all();
}

void BackgroundHasher::Submit(size_t n) {
  Push({.source = Source::kBuffer, .buffer = acquired_, .bytes = n});
}

void BackgroundHasher::SubmitFileRange(int fd, uint64_t offset, uint64_t n) {
  Push({.source = Source::kFile, .fd = fd, .offset = offset, .bytes = n});
}

void BackgroundHasher::SubmitZeros(uint64_t n) {
  Push({.source = Source::kZeros, .bytes = n});
}

Result<uint64_t> BackgroundHasher::Finish() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return queue_.empty() && !busy_; });
  // The hasher's last Update happened before it cleared busy_ under mu_, which we now hold.
  if (!error_) return Fail(error_.error());
  return hash_.Digest();
}

Status BackgroundHasher::Hash(const Job& job) {
  switch (job.source) {
    case Source::kBuffer:
      hash_.Update(std::span(buffers_[job.buffer].get(), static_cast<size_t>(job.bytes)));
      return Ok();
    case Source::kZeros:
      for (uint64_t left = job.bytes; left > 0;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left, sizeof kZeros));
        hash_.Update(std::span(kZeros, n));
        left -= n;
      }
      return Ok();
    case Source::kFile:
      if (!read_buffer_) read_buffer_ = std::make_unique_for_overwrite<std::byte[]>(chunk_bytes_);
      for (uint64_t done = 0; done < job.bytes;) {
        const auto want = static_cast<size_t>(std::min<uint64_t>(job.bytes - done, chunk_bytes_));
        MS_ASSIGN_OR_RETURN(
            const size_t got,
            env_->PRead(job.fd, std::span(read_buffer_.get(), want), job.offset + done));
        if (got == 0) {
          return Fail(Code::kIOError, "read back for hashing: fd " + std::to_string(job.fd) +
                                          " ends at byte " + std::to_string(job.offset + done));
        }
        hash_.Update(std::span(read_buffer_.get(), got));
        done += got;
      }
      return Ok();
  }
  return Ok();
}

void BackgroundHasher::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    changed_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const Job job = queue_.front();
    queue_.pop_front();
    busy_ = true;
    const bool failed = !error_;
    lock.unlock();
    Status s = failed ? Ok() : Hash(job);  // after a failure, only drain
    lock.lock();
    if (!s && error_) error_ = std::move(s);
    busy_ = false;
    if (job.source == Source::kBuffer) free_.push_back(job.buffer);
    changed_.notify_all();
  }
}

}  // namespace modelswap::snapshot
