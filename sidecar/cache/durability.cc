// Boot-id marks on assembled versions (durability.h).
#include "sidecar/cache/durability.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cerrno>

#include "common/posix_error.h"

namespace modelswap::cache {

Status MakeDurableOrMark(Env* env, int fd, const std::string& path, bool* deferred) {
  *deferred = false;
  auto boot = env->BootId();
  if (boot && ::fsetxattr(fd, kBootMarkXattr, boot->data(), boot->size(), 0) == 0) {
    *deferred = true;
    return Ok();
  }
  // ENOSPC from the xattr is a full disk like any other: the caller evicts and retries.
  if (!boot) {
    spdlog::warn("cache: no boot id ({}); fsyncing {}", boot.error().ToString(), path);
  } else if (errno == ENOSPC || errno == EDQUOT) {
    return Fail(ErrnoError("fsetxattr " + std::string(kBootMarkXattr), path));
  }
  return env->Fsync(fd);
}

Result<bool> MarkedByAnotherBoot(Env* env, int fd, const std::string& path) {
  char buf[128];
  ssize_t n = ::fgetxattr(fd, kBootMarkXattr, buf, sizeof(buf));
  if (n < 0) {
    // No mark, or no xattrs on this file system (so none was ever set): synced before publishing.
    if (errno == ENODATA || errno == ENOTSUP) return false;
    if (errno == ERANGE) return true;  // not a boot id we wrote
    return Fail(ErrnoError("fgetxattr " + std::string(kBootMarkXattr), path));
  }
  auto boot = env->BootId();
  if (!boot) return true;
  return std::string_view(buf, static_cast<size_t>(n)) != *boot;
}

Status MarkDurable(Env* env, int fd, const std::string& path) {
  MS_RETURN_IF_ERROR(env->Fsync(fd));
  if (::fchmod(fd, 0644) != 0) return Fail(ErrnoError("fchmod 0644", path));
  int removed = ::fremovexattr(fd, kBootMarkXattr);
  int err = errno;
  if (::fchmod(fd, 0444) != 0) return Fail(ErrnoError("fchmod 0444", path));
  if (removed != 0 && err != ENODATA) {
    return Fail(PosixError("fremovexattr " + std::string(kBootMarkXattr), path, err));
  }
  return Ok();
}

}  // namespace modelswap::cache
