// LRU-K history in file timestamps (access_history.h).
#include "sidecar/cache/access_history.h"

#include "sidecar/cache/file_ops.h"

namespace modelswap::cache {

Result<AccessHistory> ReadAccessHistory(const std::string& path) {
  MS_ASSIGN_OR_RETURN(FileUsage u, StatUsage(path));
  AccessHistory h;
  h.last_ns = u.atime_ns;
  // A file whose mtime is not below its atime was not written by this scheme (or a relatime
  // update raced it): treat it as referenced once.
  h.previous_ns = (u.mtime_ns > 0 && u.mtime_ns < u.atime_ns) ? u.mtime_ns : 0;
  return h;
}

AccessHistory NextHistory(const AccessHistory& before, int64_t now_ns,
                          int64_t correlated_period_ns) {
  AccessHistory h = before;
  if (now_ns <= before.last_ns) return h;  // an older clock reading: keep the newer history
  if (before.last_ns > 0 && now_ns - before.last_ns < correlated_period_ns) {
    h.last_ns = now_ns;  // correlated with the last reference: the same one, later
    return h;
  }
  h.previous_ns = before.last_ns;
  h.last_ns = now_ns;
  return h;
}

Status RecordAccess(const std::string& path, int64_t now_ns, int64_t correlated_period_ns) {
  MS_ASSIGN_OR_RETURN(AccessHistory before, ReadAccessHistory(path));
  AccessHistory after = NextHistory(before, now_ns, correlated_period_ns);
  if (after.last_ns == before.last_ns && after.previous_ns == before.previous_ns) return Ok();
  return SetFileTimes(path, after.last_ns, after.previous_ns);
}

Status InitAccessHistory(int fd, const std::string& path, int64_t now_ns) {
  return SetFileTimesFd(fd, path, now_ns, 0);
}

bool EvictBefore(const AccessHistory& a, const AccessHistory& b) {
  if (a.referenced_twice() != b.referenced_twice()) return !a.referenced_twice();
  if (!a.referenced_twice()) return a.last_ns < b.last_ns;
  if (a.previous_ns != b.previous_ns) return a.previous_ns < b.previous_ns;
  return a.last_ns < b.last_ns;
}

}  // namespace modelswap::cache
