// Unnamed-then-linked files in the shm dir.
#include "common/shm_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "common/posix_error.h"

namespace modelswap {

Status MakeShmDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0770) != 0 && errno != EEXIST) {
      return Fail(ErrnoError("mkdir", prefix));
    }
  }
  return Ok();
}

Result<UnnamedFile> CreateUnnamedFile(const std::string& dir, const std::string& path) {
  UnnamedFile file;
  file.fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0660);
  if (file.fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    const std::string_view base = std::string_view(path).substr(path.rfind('/') + 1);
    file.temp = dir + "/." + std::string(base) + ".tmp-" + std::to_string(::getpid());
    ::unlink(file.temp.c_str());  // a leftover of a dead process with our pid
    file.fd = ::open(file.temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
  }
  if (file.fd < 0) return Fail(ErrnoError("create", dir));
  return file;
}

Status LinkUnnamedFile(const UnnamedFile& file, const std::string& path) {
  int rc = 0;
  if (file.temp.empty()) {
    const std::string proc = "/proc/self/fd/" + std::to_string(file.fd);
    rc = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW);
  } else {
    rc = ::link(file.temp.c_str(), path.c_str());
  }
  if (rc != 0) return Fail(ErrnoError("link", path));
  return Ok();
}

void ForgetUnnamedFile(const UnnamedFile& file) {
  if (!file.temp.empty()) ::unlink(file.temp.c_str());
}

Status CheckShmMagicAndVersion(std::string_view kind, uint64_t magic, uint64_t want_magic,
                               uint32_t version, uint32_t want_version) {
  if (magic != want_magic) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%#018llx", static_cast<unsigned long long>(magic));
    return Fail(Code::kCorruption, "bad magic " + std::string(hex) + ": not a modelswap " +
                                       std::string(kind) + " file");
  }
  if (version != want_version) {
    return Fail(Code::kFailedPrecondition, "layout version " + std::to_string(version) +
                                               ", this library reads version " +
                                               std::to_string(want_version));
  }
  return Ok();
}

}  // namespace modelswap
