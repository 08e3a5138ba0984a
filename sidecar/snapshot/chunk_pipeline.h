// ChunkPipeline: reads a range of a file in chunks on a reader thread and hashes every chunk on a
// hasher thread, handing each chunk in order to the calling thread meanwhile.
//
// A restore reads a snapshot, hashes it and copies it into the region; done one after the other
// on one thread it takes twice as long as reading the file. Here the three overlap on the pod's
// cores: the reader keeps the disk busy (a cold file streams at the disk's speed) while the
// caller copies the previous chunk and the hasher hashes the one before. Memory stays at depth *
// chunk bytes whatever the file's size: a chunk is read again only once both the caller and the
// hasher are done with it.
//
// Thread safety: one calling thread uses Next/Release/Finish; the two threads are internal.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/checksum.h"
#include "common/env.h"
#include "common/status.h"

namespace modelswap::snapshot {

// Fills out from fd at offset, retrying short reads; kCorruption naming path if the file ends
// first.
[[nodiscard]] Status ReadFullAt(Env* env, int fd, std::span<std::byte> out, uint64_t offset,
                                const std::string& path);

class ChunkPipeline {
 public:
  // Reads [offset, offset + length) of fd (kept open by the caller until Finish or destruction);
  // path is for messages.
  ChunkPipeline(Env* env, int fd, std::string path, uint64_t offset, uint64_t length,
                size_t chunk_bytes, size_t depth = 4);
  ~ChunkPipeline();  // stops both threads, whatever state the stream is in
  ChunkPipeline(const ChunkPipeline&) = delete;
  ChunkPipeline& operator=(const ChunkPipeline&) = delete;

  // The next chunk, in order (an empty span after the last); the read's error if it failed
  // (kCorruption when the file ends early). Valid until Release().
  [[nodiscard]] Result<std::span<const std::byte>> Next();
  // The caller is done with the chunk Next() returned.
  void Release();
  // XXH3-64 of the whole range (waits for the hasher). Call after Next() returned the end.
  [[nodiscard]] Result<uint64_t> Finish();

 private:
  struct Slot {
    std::unique_ptr<std::byte[]> bytes;
    size_t size = 0;
    int users = 0;  // 2 once filled, until the caller and the hasher both released it
  };
  void ReadLoop();
  void HashLoop();
  Slot& SlotOf(uint64_t chunk) { return slots_[chunk % slots_.size()]; }

  Env* env_;
  int fd_;
  std::string path_;
  uint64_t offset_, length_;
  size_t chunk_bytes_;
  uint64_t chunks_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Slot> slots_;  // guarded by mu_ (bytes written by the reader outside it, see .cc)
  uint64_t read_ = 0;        // guarded by mu_: chunks filled so far
  uint64_t taken_ = 0;       // the caller's: chunks returned by Next
  uint64_t hashed_ = 0;      // guarded by mu_
  Status read_error_;        // guarded by mu_
  bool stop_ = false;        // guarded by mu_
  Xxh3Stream hash_;          // the hasher's until hashed_ == chunks_
  std::thread reader_, hasher_;
};

}  // namespace modelswap::snapshot
