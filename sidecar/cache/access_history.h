// The access history LRU-K eviction needs (K = 2: the times of each entry's last two
// references), kept in the cached files' own timestamps.
//
// LRU-K (O'Neil, O'Neil and Weikum, "The LRU-K Page Replacement Algorithm for Database Disk
// Buffering", SIGMOD 1993) evicts the entry whose K-th most recent reference is oldest (largest
// "backward K-distance"); an entry referenced fewer than K times has an infinite distance and
// goes first, least recently used first among those. With K = 2 a chunk or version used once (a
// one-off scan, a version tried and rolled back) leaves before one used repeatedly, however
// recently the one-off happened. References closer together than a "correlated reference period"
// count as one (the paper's rule: 8 agents of one node asking for the same version at once are
// one reference, not eight), so they only move the last reference time.
//
// Where the history lives: every cached file is immutable once published, so its mtime and atime
// are free to carry it: atime = the last reference, mtime = the one before (0 = none yet). An
// update is one utimensat(2) of both, so history
//   - survives agents restarting (it is on disk, in the inode; no log to replay or compact),
//   - is safe with concurrent agents without a lock: each update is atomic per file; two agents
//     updating at once may lose one of the two updates, which are then within a few milliseconds
//     of each other, i.e. correlated anyway,
//   - costs no extra file per chunk and disappears with the file it describes.
// The kernel itself may move atime forward when a file is read (relatime: at most once a day, or
// when atime <= mtime): that is a real reference, and it leaves the previous one in place.
// Mounts with noatime do not affect explicit utimensat calls.
//
// Thread safety: functions are thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace modelswap::cache {

struct AccessHistory {
  int64_t last_ns = 0;      // the most recent reference
  int64_t previous_ns = 0;  // the one before it; 0: referenced once
  bool referenced_twice() const { return previous_ns > 0; }
};

// Reads the history of path (its atime and mtime).
[[nodiscard]] Result<AccessHistory> ReadAccessHistory(const std::string& path);

// The history after a reference at now_ns.
AccessHistory NextHistory(const AccessHistory& before, int64_t now_ns,
                          int64_t correlated_period_ns);

// Records a reference at now_ns (read, compute, utimensat). kNotFound if path is gone.
[[nodiscard]] Status RecordAccess(const std::string& path, int64_t now_ns,
                                  int64_t correlated_period_ns);

// A new file's history (one reference, at now_ns), set on its descriptor before it is published.
[[nodiscard]] Status InitAccessHistory(int fd, const std::string& path, int64_t now_ns);

// LRU-K order: true if `a` should be evicted before `b`. Entries referenced once come first
// (oldest last reference first), then the rest by oldest second-to-last reference.
bool EvictBefore(const AccessHistory& a, const AccessHistory& b);

}  // namespace modelswap::cache
