// inotify + eventfd + poll(2); see dir_watcher.h.
#include "common/dir_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <climits>

namespace modelswap {
namespace {
// Everything that can make a new file appear or an old one change: written in place (some
// tools), created, renamed over (POSIX), deleted then re-created (blobfuse's copy + delete),
// attributes changed (touch, chmod).
constexpr uint32_t kMask =
    IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_MODIFY;
}  // namespace

DirWatcher::DirWatcher(std::string dir, std::string file_name, bool use_inotify)
    : dir_(std::move(dir)), file_name_(std::move(file_name)) {
  if (use_inotify) inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  TryAddWatch();
}

DirWatcher::~DirWatcher() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void DirWatcher::TryAddWatch() {
  if (inotify_fd_ < 0 || wd_ >= 0) return;
  wd_ = ::inotify_add_watch(inotify_fd_, dir_.c_str(), kMask | IN_DELETE_SELF | IN_MOVE_SELF);
}

bool DirWatcher::DrainEvents() {
  alignas(struct inotify_event) char buf[16 * 1024];
  bool relevant = false;
  for (;;) {
    ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
    if (n <= 0) break;  // EAGAIN: drained
    for (char* p = buf; p < buf + n;) {
      auto* e = reinterpret_cast<struct inotify_event*>(p);
      if (e->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        wd_ = -1;  // the directory went away: watch it again when it is back
        relevant = true;
      } else if (e->mask & IN_Q_OVERFLOW) {
        relevant = true;
      } else if (e->len > 0 && (file_name_.empty() || file_name_ == e->name)) {
        relevant = true;
      }
      p += sizeof(struct inotify_event) + e->len;
    }
  }
  if (wd_ < 0 && inotify_fd_ >= 0) {
    // Drop a stale watch descriptor before adding again (no-op if the kernel already did).
    TryAddWatch();
  }
  return relevant;
}

DirWatcher::Reason DirWatcher::Wait(int64_t timeout_ns) {
  TryAddWatch();
  struct pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
  int nfds = inotify_fd_ >= 0 ? 2 : 1;
  int64_t timeout_ms = timeout_ns <= 0 ? 0 : (timeout_ns + 999'999) / 1'000'000;
  if (timeout_ms > INT_MAX) timeout_ms = INT_MAX;
  int rc = ::poll(fds, static_cast<nfds_t>(nfds), static_cast<int>(timeout_ms));
  if (rc <= 0) return Reason::kTimeout;  // EINTR counts as a timeout: the caller re-checks
  if (fds[0].revents & POLLIN) {
    uint64_t v;
    (void)!::read(wake_fd_, &v, sizeof v);
    return Reason::kWoken;
  }
  if (nfds == 2 && (fds[1].revents & POLLIN) && DrainEvents()) return Reason::kEvent;
  return Reason::kTimeout;
}

void DirWatcher::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

}  // namespace modelswap
