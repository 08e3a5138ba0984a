// BackgroundHasher: XXH3 of a stream of chunks, computed on a second thread.
//
// Restoring a snapshot reads each chunk, copies it into the region and hashes it; on one core the
// hash alone adds about 15% to the read. This moves the hash to another thread: the producer
// fills a buffer, hands it over in order, and goes on reading into the next buffer while the
// hasher works, so reading and hashing overlap on two cores. Buffers are recycled (a small fixed
// ring), so memory stays at depth * chunk bytes whatever the stream's length.
//
// Thread safety: one producer thread calls Acquire/Submit/Finish; the hasher thread is internal.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common/checksum.h"

namespace modelswap::snapshot {

class BackgroundHasher {
 public:
  explicit BackgroundHasher(size_t chunk_bytes, size_t depth = 3);
  ~BackgroundHasher();  // stops the thread (the digest of an unfinished stream is dropped)
  BackgroundHasher(const BackgroundHasher&) = delete;
  BackgroundHasher& operator=(const BackgroundHasher&) = delete;

  // A buffer of chunk_bytes to fill; waits while every buffer is queued for hashing. The
  // producer owns it until it passes it to Submit().
  std::span<std::byte> Acquire();
  // Queues the first n bytes of the buffer from the last Acquire() for hashing, after every
  // chunk submitted before it. The producer must not touch the buffer afterwards.
  void Submit(size_t n);
  // Waits until every submitted chunk is hashed; returns the XXH3-64 of all of them in order.
  // Ends the stream: call once.
  uint64_t Finish();

 private:
  struct Job {
    size_t buffer;
    size_t bytes;
  };
  void Run();

  size_t chunk_bytes_;
  std::vector<std::unique_ptr<std::byte[]>> buffers_;
  size_t acquired_ = 0;  // producer's: buffer handed out by the last Acquire()

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<size_t> free_;  // guarded by mu_
  std::deque<Job> queue_;    // guarded by mu_
  bool busy_ = false;        // guarded by mu_: the hasher holds a job outside the lock
  bool stop_ = false;        // guarded by mu_
  Xxh3Stream hash_;          // the hasher thread's, read by Finish() once the queue is drained
  std::thread thread_;
};

}  // namespace modelswap::snapshot
