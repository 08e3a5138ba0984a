// Reader slot claim (OFD lock), range announcements and heartbeat.
#include "sidecar/client/model/reader_slot.h"

#include <fcntl.h>
#include <unistd.h>

#include <random>

namespace modelswap::ctl {
namespace {

// F_OFD_SETLK on one byte: a lock of this open file description only.
bool LockByte(int fd, uint64_t offset, short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(offset);
  fl.l_len = 1;
  fl.l_pid = 0;  // required by OFD locks
  return ::fcntl(fd, F_OFD_SETLK, &fl) == 0;
}

uint64_t RandomToken() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t t = 0;
  while (t == 0)
    t = rng();
  return t;
}

uint64_t SlotOffset(uint32_t i) {
  return MS_CTL_SLOTS_OFFSET + uint64_t{i} * MS_CTL_SLOT_BYTES;
}

}  // namespace

Result<ReaderSlot> ReaderSlot::Claim(ControlBlockFile& file) {
  for (uint32_t i = 0; i < MS_CTL_SLOT_COUNT; ++i) {
    if (!LockByte(file.fd(), SlotOffset(i), F_WRLCK)) continue;
    ms_ctl_slot& s = Slot(file.header(), i);
    // The previous holder is gone (its lock was released): reset its words before naming
    // ourselves owner. Relaxed: the release store of owner below publishes them.
    Word(s.max_generation).store(0, std::memory_order_relaxed);
    Word(s.min_generation).store(0, std::memory_order_relaxed);
    Word(s.heartbeat_ns).store(MonotonicNanos(), std::memory_order_relaxed);
    Word(s.pid).store(static_cast<uint64_t>(::getpid()), std::memory_order_relaxed);
    // Release: pairs with the agent's acquire load of owner (ReadSlot).
    Word(s.owner).store(RandomToken(), std::memory_order_release);
    return ReaderSlot(&file, i);
  }
  return Fail(Code::kUnavailable, "control block " + file.path() + ": all " +
                                      std::to_string(MS_CTL_SLOT_COUNT) +
                                      " reader slots are in use");
}

ReaderSlot::ReaderSlot(ReaderSlot&& o) noexcept
    : file_(o.file_), index_(o.index_), min_(o.min_), max_(o.max_) {
  o.file_ = nullptr;
}

ReaderSlot::~ReaderSlot() {
  if (file_ == nullptr) return;
  Announce(0, 0);
  // Release: the cleared range is visible before the slot reads as free.
  Word(slot().owner).store(0, std::memory_order_release);
  LockByte(file_->fd(), SlotOffset(index_), F_UNLCK);
}

void ReaderSlot::Announce(uint64_t min_generation, uint64_t max_generation) {
  ms_ctl_slot& s = slot();
  // Widen first (control_block.h): the agent, reading these words one at a time, must never see
  // a range narrower than what we read. Each store is relaxed on its own; the seq_cst fence at
  // the end orders all of them before our next read of the record.
  if (max_generation == 0) {
    Word(s.min_generation).store(0, std::memory_order_relaxed);
    Word(s.max_generation).store(0, std::memory_order_relaxed);
  } else {
    if (max_generation > max_)
      Word(s.max_generation).store(max_generation, std::memory_order_relaxed);
    if (min_generation != min_) {
      Word(s.min_generation).store(min_generation, std::memory_order_relaxed);
    }
    if (max_generation < max_)
      Word(s.max_generation).store(max_generation, std::memory_order_relaxed);
  }
  min_ = max_generation == 0 ? 0 : min_generation;
  max_ = max_generation;
  // seq_cst: the client half of the Dekker pairing with WriteRecord's fence.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void ReaderSlot::Beat() {
  // Relaxed: a lone timestamp; the agent only compares it with its own clock.
  Word(slot().heartbeat_ns).store(MonotonicNanos(), std::memory_order_relaxed);
}

}  // namespace modelswap::ctl
