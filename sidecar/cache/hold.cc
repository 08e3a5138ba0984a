// Holding assembled versions (hold.h).
#include "sidecar/cache/hold.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "common/posix_error.h"
#include "sidecar/cache/access_history.h"
#include "sidecar/cache/cache_layout.h"

namespace modelswap::cache {

Hold::Hold(Hold&& other) noexcept
    : lock_(std::move(other.lock_)),
      fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)) {}

Hold& Hold::operator=(Hold&& other) noexcept {
  if (this != &other) {
    Release();
    lock_ = std::move(other.lock_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

void Hold::Release() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  lock_.Release();
}

Result<OfdLock> LockHold(const std::string& cache_dir, const std::string& model,
                         const std::string& file_name) {
  return OfdLock::Acquire(LockFilePath(cache_dir, LockKind::kVersionHold),
                          VersionLockOffset(model, file_name), OfdLock::Mode::kShared);
}

Result<Hold> HoldLocked(OfdLock lock, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Fail(ErrnoError("open assembled version", path));
  Hold h;
  h.lock_ = std::move(lock);
  h.fd_ = fd;
  h.path_ = path;
  return h;
}

Result<Hold> HoldVersion(Env* env, const std::string& path, int64_t correlated_period_ns) {
  // <cache>/versions/<model>/<file>
  std::string file = path.substr(path.rfind('/') + 1);
  std::string model_dir = DirName(path);
  std::string model = model_dir.substr(model_dir.rfind('/') + 1);
  std::string versions = DirName(model_dir);
  auto entry = ParseVersionEntry(file);
  if (path.find('/') == std::string::npos || !entry ||
      entry->kind != VersionEntryName::Kind::kAssembled || !ValidateNames(model, entry->version) ||
      !versions.ends_with("/versions")) {
    return Fail(Code::kInvalidArgument, path + ": not an assembled version in a node cache");
  }
  std::string cache_dir = DirName(versions);
  MS_ASSIGN_OR_RETURN(OfdLock lock, LockHold(cache_dir, model, file));
  MS_ASSIGN_OR_RETURN(Hold h, HoldLocked(std::move(lock), path));
  (void)RecordAccess(path, env->NowUnixNanos(), correlated_period_ns);
  return h;
}

}  // namespace modelswap::cache
