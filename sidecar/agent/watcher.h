// Waking the model loop when a manifest may have changed: inotify where the filesystem delivers
// events, and always a poll interval as well.
//
// inotify sees changes made through this kernel's VFS only: on blobfuse or any network
// filesystem, a manifest replaced by another node produces no event at all, and a watch may even
// fail to be added. So the watcher never relies on it: Wait() returns on a relevant event, on
// Wake(), or when the timeout (the poll interval, or sooner) expires, and the caller re-reads
// the manifest each time. A directory that does not exist yet is watched as soon as it appears.
//
// Thread safety: Wait() from the one model thread; Wake() from any thread.
#pragma once

#include <cstdint>
#include <string>

namespace modelswap::agent {

class Watcher {
 public:
  // Watches `dir` for changes to the file named `file_name` (manifest.json). With use_inotify
  // false, Wait() only times out or is woken (pure polling, e.g. `agent --no-inotify`).
  Watcher(std::string dir, std::string file_name, bool use_inotify = true);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  enum class Reason { kEvent, kTimeout, kWoken };
  // Blocks up to timeout_ns. kEvent: the file was written, created, renamed or deleted.
  Reason Wait(int64_t timeout_ns);
  // Makes the current or next Wait() return kWoken (shutdown).
  void Wake();
  // Whether an inotify watch is in place (for /v1/status); events may still never come.
  bool watching() const { return wd_ >= 0; }

 private:
  void TryAddWatch();
  bool DrainEvents();  // true if any event concerned file_name_

  std::string dir_, file_name_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd
  int wd_ = -1;
};

}  // namespace modelswap::agent
