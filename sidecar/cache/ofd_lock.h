// One byte-range lock of a lock file, owned by an open file description (fcntl F_OFD_SETLK /
// F_OFD_SETLKW, Linux >= 3.15), released by the kernel when the description is closed: when the
// holder calls Release, is destroyed, or its process dies, SIGKILL included. That last property is
// what lets a waiter take over from a filler that died, with no pid files and no timeouts.
//
// Why OFD locks and not the alternatives (fcntl(2), "Open file description locks"):
//   - classic POSIX (F_SETLK) locks belong to the process: any close() of any descriptor of the
//     file drops them, and threads of one process never conflict with each other;
//   - flock(2) locks whole files only, so each chunk would need its own lock file.
// OFD locks conflict between two descriptions even within one process, so each acquisition opens
// its own description: the cache's fetch threads then exclude each other exactly as processes do.
// The kernel does no deadlock detection for OFD locks; the cache avoids cycles by order (a
// version's build lock, then chunk locks; never the other way round) and by never waiting for a
// second lock of the same kind.
//
// An exclusive lock needs the lock file open for writing; a shared one only for reading, so an app
// container that sees the cache read-only can still hold a version (hold.h).
//
// Thread safety: an OfdLock is owned by one thread at a time; distinct OfdLocks are independent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace modelswap::cache {

class OfdLock {
 public:
  enum class Mode { kShared, kExclusive };

  // Blocks (F_OFD_SETLKW, retried after EINTR) until the byte at `offset` is granted.
  [[nodiscard]] static Result<OfdLock> Acquire(const std::string& lock_file, uint64_t offset,
                                               Mode mode);
  // F_OFD_SETLK: nullopt if someone else holds a conflicting lock.
  [[nodiscard]] static Result<std::optional<OfdLock>> TryAcquire(const std::string& lock_file,
                                                                 uint64_t offset, Mode mode);
  // Whether some other description holds a lock conflicting with `mode` (F_OFD_GETLK): a probe
  // that takes nothing. A probe says only what was true when it ran.
  [[nodiscard]] static Result<bool> IsLocked(const std::string& lock_file, uint64_t offset,
                                             Mode mode);

  OfdLock() = default;
  OfdLock(OfdLock&& other) noexcept;
  OfdLock& operator=(OfdLock&& other) noexcept;
  OfdLock(const OfdLock&) = delete;
  OfdLock& operator=(const OfdLock&) = delete;
  ~OfdLock() { Release(); }

  bool held() const { return fd_ >= 0; }
  void Release();

 private:
  explicit OfdLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace modelswap::cache
