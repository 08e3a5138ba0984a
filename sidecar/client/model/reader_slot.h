// A client's reader slot in a control block: claiming it, announcing the generations read, and
// the heartbeat (protocol: control_block.h, "Slot protocol").
//
// A slot is claimed with an OFD write lock (fcntl F_OFD_SETLK) on its first byte, which belongs
// to the open file description: two clients in one process conflict like two processes do, and
// the kernel releases it when the descriptor closes or the process dies (SIGKILL included). So
// a claimed slot is never shared, and a dead holder's slot is free without any cleanup.
//
// Thread safety: none; the owning ModelClient serialises calls with its mutex.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "sidecar/client/model/control_block_access.h"

namespace modelswap::ctl {

class ReaderSlot {
 public:
  // Claims the first free slot of `file`. kUnavailable if every slot is held.
  [[nodiscard]] static Result<ReaderSlot> Claim(ControlBlockFile& file);
  ReaderSlot(ReaderSlot&&) noexcept;
  ReaderSlot& operator=(ReaderSlot&&) = delete;
  // Clears the slot and releases the lock.
  ~ReaderSlot();

  uint32_t index() const { return index_; }

  // Announces the generations [min, max] as read (max = 0: nothing); widening first, as the
  // protocol requires. Ends with a seq_cst fence (the client half of the Dekker pairing).
  void Announce(uint64_t min_generation, uint64_t max_generation);
  void Beat();

 private:
  ReaderSlot(ControlBlockFile* file, uint32_t index) : file_(file), index_(index) {}
  ms_ctl_slot& slot() const { return Slot(file_->header(), index_); }

  ControlBlockFile* file_;
  uint32_t index_;
  uint64_t min_ = 0, max_ = 0;  // what the slot says now (only this object writes it)
};

}  // namespace modelswap::ctl
