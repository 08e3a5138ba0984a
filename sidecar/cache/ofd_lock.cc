// OFD byte-range locks (ofd_lock.h).
#include "sidecar/cache/ofd_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "common/posix_error.h"

namespace modelswap::cache {
namespace {

struct flock ByteRange(uint64_t offset, short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(offset);
  fl.l_len = 1;
  fl.l_pid = 0;  // F_OFD_* require 0
  return fl;
}

short TypeFor(OfdLock::Mode mode) {
  return mode == OfdLock::Mode::kExclusive ? F_WRLCK : F_RDLCK;
}

// A new open file description of the lock file: writable for exclusive locks; for shared ones
// read-only when the file cannot be opened for writing (a read-only mount in an app container).
Result<int> OpenLockFile(const std::string& path, OfdLock::Mode mode) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && mode == OfdLock::Mode::kShared && (errno == EROFS || errno == EACCES)) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return Fail(ErrnoError("open lock file", path));
  return fd;
}

}  // namespace

Result<OfdLock> OfdLock::Acquire(const std::string& lock_file, uint64_t offset, Mode mode) {
  MS_ASSIGN_OR_RETURN(int fd, OpenLockFile(lock_file, mode));
  struct flock fl = ByteRange(offset, TypeFor(mode));
  while (::fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
    if (errno == EINTR) continue;
    Error e = ErrnoError("fcntl F_OFD_SETLKW", lock_file);
    ::close(fd);
    return Fail(e);
  }
  return OfdLock(fd);
}

Result<std::optional<OfdLock>> OfdLock::TryAcquire(const std::string& lock_file, uint64_t offset,
                                                   Mode mode) {
  MS_ASSIGN_OR_RETURN(int fd, OpenLockFile(lock_file, mode));
  struct flock fl = ByteRange(offset, TypeFor(mode));
  if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return std::optional<OfdLock>(OfdLock(fd));
  int err = errno;
  ::close(fd);
  if (err == EAGAIN || err == EACCES) return std::optional<OfdLock>();
  return Fail(PosixError("fcntl F_OFD_SETLK", lock_file, err));
}

Result<bool> OfdLock::IsLocked(const std::string& lock_file, uint64_t offset, Mode mode) {
  MS_ASSIGN_OR_RETURN(int fd, OpenLockFile(lock_file, Mode::kShared));
  struct flock fl = ByteRange(offset, TypeFor(mode));
  int rc = ::fcntl(fd, F_OFD_GETLK, &fl);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Fail(PosixError("fcntl F_OFD_GETLK", lock_file, err));
  return fl.l_type != F_UNLCK;
}

OfdLock::OfdLock(OfdLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

OfdLock& OfdLock::operator=(OfdLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void OfdLock::Release() {
  // Closing the only descriptor of the description releases its locks (fcntl(2)).
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

}  // namespace modelswap::cache
