// Unnamed-then-linked files in the shm dir, and the mappings of such files.
#include "common/shm_file.h"

#include <fcntl.h>
#include <spdlog/fmt/fmt.h>
#include <sys/file.h>
#include <sys/mman.h>
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

// Not `this->~ShmMapping()`: that would end path_'s lifetime too, and assigning to a destroyed
// string is a double free once its buffer is on the heap.
ShmMapping& ShmMapping::operator=(ShmMapping&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
    inode_ = std::exchange(other.inode_, 0);
    device_ = std::exchange(other.device_, 0);
  }
  return *this;
}

ShmMapping::~ShmMapping() {
  Release();
}

void ShmMapping::Release() {
  if (base_ != nullptr) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);  // also drops the flock and OFD locks taken through it
  base_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

Result<ShmMapping> ShmMapping::Map(int fd, uint64_t size, MapAccess access, std::string path) {
  auto fail = [fd](Error e) {
    ::close(fd);
    return Fail(std::move(e));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(ErrnoError("fstat", path));
  const int prot = access == MapAccess::kReadWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  void* base = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail(ErrnoError("mmap", path));
  ShmMapping m;
  m.fd_ = fd;
  m.base_ = static_cast<std::byte*>(base);
  m.size_ = size;
  m.path_ = std::move(path);
  m.inode_ = static_cast<uint64_t>(st.st_ino);
  m.device_ = static_cast<uint64_t>(st.st_dev);
  return m;
}

Result<bool> ShmMapping::Replaced() const {
  struct stat named {};
  if (::stat(path_.c_str(), &named) != 0) {
    if (errno == ENOENT) return true;
    return Fail(ErrnoError("stat", path_));
  }
  return static_cast<uint64_t>(named.st_ino) != inode_ ||
         static_cast<uint64_t>(named.st_dev) != device_;
}

void ShmMapping::AbandonAfterFork() {
  if (base_ != nullptr) {
    // MAP_FIXED replaces the shared file mapping in place with private zero pages.
    (void)::mmap(base_, size_, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
                 0);
  }
  if (fd_ >= 0) ::close(fd_);
  base_ = nullptr;  // nothing left for the destructor to unmap or close
  fd_ = -1;
}

Status LockExclusive(int fd, const std::string& path, std::string_view held) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return Ok();
  if (errno != EWOULDBLOCK) return Fail(ErrnoError("flock", path));
  return Fail(Code::kFailedPrecondition, std::string(held));
}

Result<ShmMapping> OpenShmMapping(const std::string& path, const ShmOpenOptions& o) {
  int flags = (o.access == MapAccess::kReadWrite ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  if (!o.follow_symlinks) flags |= O_NOFOLLOW;
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Fail(ErrnoError("open", path));
  auto fail = [fd](Error e) {
    ::close(fd);
    return Fail(std::move(e));
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(ErrnoError("fstat", path));
  if (!S_ISREG(st.st_mode)) return fail(Error(Code::kCorruption, path + ": not a regular file"));
  if (!o.held_message.empty()) {
    if (Status s = LockExclusive(fd, path, o.held_message); !s) return fail(s.error());
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < o.header_bytes) {
    return fail(Error(Code::kCorruption,
                      fmt::format("{} {}: file is {} bytes, smaller than the {}-byte header",
                                  o.kind, path, size, o.header_bytes)));
  }
  return ShmMapping::Map(fd, size, o.access, path);
}

Result<ShmMapping> SizeAndMapNewFile(int fd, uint64_t size, std::string path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    Error error = ErrnoError("ftruncate", path);
    ::close(fd);
    return Fail(error);
  }
  return ShmMapping::Map(fd, size, MapAccess::kReadWrite, std::move(path));
}

}  // namespace modelswap
