// BackgroundHasher: XXH3 of a stream of chunks, computed on a second thread.
//
// Restoring a snapshot reads each chunk, copies it into the region and hashes it; on one core the
// hash alone adds about 15% to the read. This moves the hash to another thread, so reading and
// hashing overlap on two cores. Chunks arrive in stream order in one of three ways:
//   - the producer fills a buffer from Acquire() and hands it over with Submit();
//   - SubmitFileRange(): the hasher reads the bytes itself from a file (a region the producer
//     just filled with a kernel copy), so the producer's thread never touches them;
//   - SubmitZeros(): a hole, hashed as zeros without reading anything.
// Buffers are recycled (a small fixed ring), so memory stays at (depth + 1) * chunk bytes
// whatever the stream's length.
//
// Thread safety: one producer thread calls Acquire/Submit*/Finish; the hasher thread is internal.
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
#include "common/env.h"
#include "common/status.h"

namespace modelswap::snapshot {

class BackgroundHasher {
 public:
  // env is used only for SubmitFileRange (may be null otherwise).
  explicit BackgroundHasher(size_t chunk_bytes, Env* env = nullptr, size_t depth = 3);
  ~BackgroundHasher();  // stops the thread (the digest of an unfinished stream is dropped)
  BackgroundHasher(const BackgroundHasher&) = delete;
  BackgroundHasher& operator=(const BackgroundHasher&) = delete;

  // A buffer of chunk_bytes to fill; waits while every buffer is queued for hashing. The
  // producer owns it until it passes it to Submit().
  std::span<std::byte> Acquire();
  // Queues the first n bytes of the buffer from the last Acquire(). The producer must not touch
  // the buffer afterwards.
  void Submit(size_t n);
  // Queues n bytes of fd at offset (read by the hasher thread, chunk_bytes at a time). The
  // producer must not change them until Finish().
  void SubmitFileRange(int fd, uint64_t offset, uint64_t n);
  // Queues n zero bytes.
  void SubmitZeros(uint64_t n);
  // Waits until every queued chunk is hashed; returns the XXH3-64 of the stream, or the error of
  // a SubmitFileRange read. Ends the stream: call once.
  [[nodiscard]] Result<uint64_t> Finish();

 private:
  enum class Source { kBuffer, kFile, kZeros };
  struct Job {
    Source source;
    size_t buffer = 0;  // kBuffer
    int fd = -1;        // kFile
    uint64_t offset = 0;
    uint64_t bytes = 0;
  };
  void Push(Job job);
  void Run();
  Status Hash(const Job& job);

  size_t chunk_bytes_;
  Env* env_;
  std::vector<std::unique_ptr<std::byte[]>> buffers_;
  std::unique_ptr<std::byte[]> read_buffer_;  // the hasher thread's, for kFile jobs
  size_t acquired_ = 0;                       // producer's: buffer from the last Acquire()

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<size_t> free_;  // guarded by mu_
  std::deque<Job> queue_;    // guarded by mu_
  bool busy_ = false;        // guarded by mu_: the hasher holds a job outside the lock
  bool stop_ = false;        // guarded by mu_
  Status error_;             // guarded by mu_: the first failed kFile read
  Xxh3Stream hash_;          // the hasher thread's, read by Finish() once the queue is drained
  std::thread thread_;
};

}  // namespace modelswap::snapshot
