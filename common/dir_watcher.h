// Waking a loop when a directory's entries may have changed: an inotify watch where the
// filesystem delivers events, and always a bounded wait as well, so polling alone still works.
//
// inotify sees changes made through this kernel's VFS only: on blobfuse or any network
// filesystem, a file replaced by another node produces no event at all, and a watch may even
// fail to be added. So callers never rely on it: Wait() returns on a relevant event, on Wake(),
// or when the timeout (the caller's poll interval, or sooner) expires, and the caller re-reads
// what it watches each time. A directory that does not exist yet, or that was removed, is
// watched again as soon as it is there. Used by the agent (a model's manifest.json) and the
// standalone operator (its directory of ModelVersion files).
//
// Thread safety: Wait() from one thread; Wake() from any thread.
#pragma once

#include <cstdint>
#include <string>

namespace modelswap {

class DirWatcher {
 public:
  // Watches `dir` for entries named `file_name` written, created, renamed, deleted or changed in
  // their attributes; an empty file_name: any entry. With use_inotify false, or where inotify is
  // unavailable, Wait() only times out or is woken (pure polling).
  DirWatcher(std::string dir, std::string file_name, bool use_inotify = true);
  ~DirWatcher();
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  enum class Reason { kEvent, kTimeout, kWoken };
  // Blocks up to timeout_ns (never longer; 0 does not block). kEvent: a watched entry changed,
  // the directory itself went away, or the kernel's queue overflowed (anything may have changed).
  Reason Wait(int64_t timeout_ns);
  // Makes the current or next Wait() return kWoken (shutdown).
  void Wake();
  // Whether an inotify watch is in place (for status pages); events may still never come.
  bool watching() const { return wd_ >= 0; }

 private:
  void TryAddWatch();
  bool DrainEvents();  // true if any event concerned a watched entry

  std::string dir_, file_name_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd
  int wd_ = -1;
};

}  // namespace modelswap
