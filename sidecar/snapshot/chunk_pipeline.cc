// ChunkPipeline: a ring of slots under one mutex. Chunk i lives in slot i % depth; the reader
// fills a slot only when both consumers released the chunk that used it before. Chunks are a few
// MiB, so one lock and one wake-up per hand-over cost nothing next to the copying.
#include "sidecar/snapshot/chunk_pipeline.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

namespace modelswap::snapshot {

Status ReadFullAt(Env* env, int fd, std::span<std::byte> out, uint64_t offset,
                  const std::string& path) {
  while (!out.empty()) {
    Result<size_t> n = env->PRead(fd, out, offset);
    if (!n) return Fail(n.error().Context("snapshot " + path));
    if (*n == 0) {
      return Fail(Code::kCorruption,
                  fmt::format("snapshot {}: file ends at byte {} (truncated)", path, offset));
    }
    out = out.subspan(*n);
    offset += *n;
  }
  return Ok();
}

ChunkPipeline::ChunkPipeline(Env* env, int fd, std::string path, uint64_t offset, uint64_t length,
                             size_t chunk_bytes, size_t depth)
    : env_(env),
      fd_(fd),
      path_(std::move(path)),
      offset_(offset),
      length_(length),
      chunk_bytes_(chunk_bytes),
      chunks_((length + chunk_bytes - 1) / chunk_bytes),
      slots_(depth) {
  for (Slot& s : slots_)
    s.bytes = std::make_unique_for_overwrite<std::byte[]>(chunk_bytes);
  reader_ = std::thread([this] { ReadLoop(); });
  hasher_ = std::thread([this] { HashLoop(); });
}

ChunkPipeline::~ChunkPipeline() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  reader_.join();
  hasher_.join();
}

void ChunkPipeline::ReadLoop() {
  for (uint64_t i = 0; i < chunks_; ++i) {
    Slot* slot = nullptr;
    {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return stop_ || SlotOf(i).users == 0; });
      if (stop_) return;
      slot = &SlotOf(i);
    }
    // Outside the lock: nobody else touches a slot with no users.
    const uint64_t at = i * chunk_bytes_;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk_bytes_, length_ - at));
    Status status = ReadFullAt(env_, fd_, std::span(slot->bytes.get(), want), offset_ + at, path_);
    {
      std::lock_guard lock(mu_);
      if (!status) {
        read_error_ = std::move(status);
        changed_.notify_all();
        return;
      }
      slot->size = want;
      slot->users = 2;
      read_ = i + 1;
    }
    changed_.notify_all();
  }
}

void ChunkPipeline::HashLoop() {
  for (uint64_t i = 0; i < chunks_; ++i) {
    Slot* slot = nullptr;
    {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return stop_ || !read_error_ || read_ > i; });
      if (stop_ || read_ <= i) return;  // stopped, or the read failed first
      slot = &SlotOf(i);
    }
    // Outside the lock: a filled slot is only read until both users release it.
    hash_.Update(std::span(slot->bytes.get(), slot->size));
    {
      std::lock_guard lock(mu_);
      --slot->users;
      hashed_ = i + 1;
    }
    changed_.notify_all();
  }
}

Result<std::span<const std::byte>> ChunkPipeline::Next() {
  if (taken_ == chunks_) return std::span<const std::byte>();
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return !read_error_ || read_ > taken_; });
  if (read_ <= taken_) return Fail(read_error_.error());
  const Slot& slot = SlotOf(taken_++);
  return std::span<const std::byte>(slot.bytes.get(), slot.size);
}

void ChunkPipeline::Release() {
  {
    std::lock_guard lock(mu_);
    Slot& slot = SlotOf(taken_ - 1);
    --slot.users;
  }
  changed_.notify_all();
}

Result<uint64_t> ChunkPipeline::Finish() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return !read_error_ || hashed_ == chunks_; });
  if (hashed_ != chunks_) return Fail(read_error_.error());
  // The hasher's last Update happened before it stored hashed_ under mu_, which we now hold.
  return hash_.Digest();
}

}  // namespace modelswap::snapshot
