// Holding an assembled version: while a Hold lives, eviction leaves the version's file alone.
//
// A holder keeps a shared OFD lock on the version's byte of <cache>/locks/hold (ofd_lock.h) and
// a read-only descriptor of the file; eviction removes a version only while holding that byte
// exclusively (F_OFD_SETLK, never waiting), so it skips every held version, and a holder that
// dies stops holding without anyone cleaning up. The lock is on a separate lock file, not on the
// .msf itself, because an exclusive fcntl lock needs a descriptor open for writing, and published
// files are 0444. Shared locks need only read access, so an app container that mounts the cache
// read-only can hold a version too.
//
// Taking a hold: lock first, then open the file. Eviction unlinks only under the exclusive lock,
// so once the shared lock is granted, a file that is still there stays until the hold ends; one
// that is gone was evicted (kNotFound: assemble it again).
//
// Thread safety: a Hold is owned by one thread at a time (movable, not copyable).
#pragma once

#include <cstdint>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/cache_options.h"
#include "sidecar/cache/ofd_lock.h"

namespace modelswap::cache {

class Hold {
 public:
  Hold() = default;
  Hold(Hold&& other) noexcept;
  Hold& operator=(Hold&& other) noexcept;
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;
  ~Hold() { Release(); }

  bool held() const { return lock_.held(); }
  // The assembled file and a read-only descriptor of it (map this one: it is the inode the hold
  // protects, e.g. with Env::MapFd).
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  void Release();

 private:
  friend Result<Hold> HoldLocked(OfdLock lock, const std::string& path);
  OfdLock lock_;
  int fd_ = -1;
  std::string path_;
};

// Holds the assembled file at `path` (<cache>/versions/<model>/<version>-<16 hex>.msf, as
// Assemble returned it), recording a reference in its access history. kNotFound if it is not
// (or no longer) there; kInvalidArgument if path is not a cache version path.
[[nodiscard]] Result<Hold> HoldVersion(Env* env, const std::string& path,
                                       int64_t correlated_period_ns = kDefaultCorrelatedPeriodNs);

// For the assembler: the hold lock is already taken (before the file was renamed into place).
[[nodiscard]] Result<Hold> HoldLocked(OfdLock lock, const std::string& path);

// The shared hold lock of a version, by name.
[[nodiscard]] Result<OfdLock> LockHold(const std::string& cache_dir, const std::string& model,
                                       const std::string& file_name);

}  // namespace modelswap::cache
