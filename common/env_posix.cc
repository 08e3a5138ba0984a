// PosixEnv: the real operating system behind the Env interface (Linux): files, paths resolved
// beneath a root (openat2, or O_NOFOLLOW component by component), mmap, madvise, the clocks.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/posix_error.h"

namespace modelswap {
namespace {

// Debian 12's glibc headers predate MADV_POPULATE_READ (Linux 5.14); the value is ABI.
#ifdef MADV_POPULATE_READ
constexpr int kMadvPopulateRead = MADV_POPULATE_READ;
#else
constexpr int kMadvPopulateRead = 22;
#endif

// A MAP_SHARED read-only mapping and a descriptor of the mapped inode (for CurrentFileSize).
class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(std::string path, void* addr, size_t size, int fd)
      : path_(std::move(path)), addr_(addr), size_(size), fd_(fd) {}
  ~PosixMappedFile() override {
    ::munmap(addr_, size_);
    ::close(fd_);
  }
  std::span<const std::byte> bytes() const override {
    return {static_cast<const std::byte*>(addr_), size_};
  }
  const std::string& path() const override { return path_; }
  Result<uint64_t> CurrentFileSize() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return Fail(PosixError("fstat", path_, errno));
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  std::string path_;
  void* addr_;
  size_t size_;
  int fd_;
};

int OpenFlags(OpenMode mode) {
  switch (mode) {
    case OpenMode::kRead:
      return O_RDONLY;
    case OpenMode::kCreateNew:
      return O_WRONLY | O_CREAT | O_EXCL;
    case OpenMode::kReadWriteNew:
      return O_RDWR | O_CREAT | O_EXCL;
    case OpenMode::kTruncate:
      return O_WRONLY | O_CREAT | O_TRUNC;
  }
  return O_RDONLY;
}

// A read-only open must not block on a FIFO (open waits for a writer) and must yield a regular
// file: opened O_NONBLOCK, checked, then made blocking again (no effect on regular files, but
// the descriptor behaves as callers expect).
Status RequireRegular(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Fail(PosixError("fstat", path, errno));
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalidArgument,
                path + ": not a regular file (mode " + std::to_string(st.st_mode & S_IFMT) + ")");
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) (void)::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return Ok();
}

Error BeneathError(const std::string& root, const std::string& rel, int err) {
  if (err == ELOOP || err == EXDEV) {
    return Error(Code::kPermissionDenied,
                 "open " + JoinPath(root, rel) + ": refusing a symlink or a path leaving " + root);
  }
  return PosixError("open", JoinPath(root, rel), err);
}

// openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS. -1 with errno; ENOSYS (or EPERM from a
// seccomp filter that does not know the call) means: use the fallback.
int OpenAt2(int dirfd, const std::string& rel, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags);
  how.mode = (flags & O_CREAT) ? 0644 : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = -1;
  for (int attempt = 0; attempt < 8; ++attempt) {  // EAGAIN: a concurrent rename raced it
    fd = ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return static_cast<int>(fd);
}

// The fallback: one component at a time, each opened O_NOFOLLOW (directories O_PATH |
// O_DIRECTORY, so a symlinked directory fails with ENOTDIR rather than being followed).
int OpenByComponents(int dirfd, const std::string& rel, int flags) {
  std::vector<std::string> parts;
  for (size_t start = 0; start <= rel.size();) {
    size_t slash = rel.find('/', start);
    if (slash == std::string::npos) slash = rel.size();
    std::string part = rel.substr(start, slash - start);
    if (part == "..") {
      errno = EXDEV;
      return -1;
    }
    if (!part.empty() && part != ".") parts.push_back(part);
    start = slash + 1;
  }
  if (parts.empty()) {
    errno = EISDIR;
    return -1;
  }
  int cur = ::dup(dirfd);
  if (cur < 0) return -1;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int next = ::openat(cur, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    ::close(cur);
    if (next < 0) {
      errno = err == ENOTDIR ? ELOOP : err;  // a symlink opened O_PATH is not a directory
      return -1;
    }
    cur = next;
  }
  int fd = ::openat(cur, parts.back().c_str(), flags | O_NOFOLLOW, 0644);
  int err = errno;
  ::close(cur);
  errno = err;
  return fd;
}

class PosixEnv final : public Env {
 public:
  Result<int> Open(const std::string& path, OpenMode mode) override {
    int fd = ::open(path.c_str(), OpenFlags(mode) | O_CLOEXEC, 0644);
    if (fd < 0) return Fail(PosixError("open", path, errno));
    return fd;
  }

  Result<int> OpenBeneath(const std::string& root, const std::string& rel, OpenMode mode) override {
    if (rel.empty() || rel.front() == '/') {
      return Fail(Code::kPermissionDenied, "open " + rel + ": not a path beneath " + root);
    }
    int dirfd = ::open(root.empty() ? "." : root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return Fail(PosixError("open", root, errno));
    const int flags = OpenFlags(mode) | O_CLOEXEC | (mode == OpenMode::kRead ? O_NONBLOCK : 0);
    int fd = OpenAt2(dirfd, rel, flags);
    if (fd < 0 && (errno == ENOSYS || errno == EPERM || errno == E2BIG)) {
      fd = OpenByComponents(dirfd, rel, flags);
    }
    int err = errno;
    ::close(dirfd);
    if (fd < 0) return Fail(BeneathError(root, rel, err));
    if (mode == OpenMode::kRead) {
      if (auto st = RequireRegular(fd, JoinPath(root, rel)); !st) {
        ::close(fd);
        return Fail(st.error());
      }
    }
    return fd;
  }

  Result<FileInfo> StatFd(int fd) override {
    struct stat st;
    if (::fstat(fd, &st) != 0) return Fail(PosixError("fstat", "fd " + std::to_string(fd), errno));
    return ToFileInfo(st);
  }

  void Close(int fd) override { ::close(fd); }

  Result<size_t> PRead(int fd, std::span<std::byte> out, uint64_t offset) override {
    for (;;) {
      ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return Fail(PosixError("pread", "fd " + std::to_string(fd), errno));
    }
  }

  Status PWrite(int fd, std::span<const std::byte> data, uint64_t offset) override {
    while (!data.empty()) {
      ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail(PosixError("pwrite", "fd " + std::to_string(fd), errno));
      }
      data = data.subspan(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return Ok();
  }

  Status Fsync(int fd) override {
    if (::fsync(fd) != 0) return Fail(PosixError("fsync", "fd " + std::to_string(fd), errno));
    return Ok();
  }

  Status Fallocate(int fd, uint64_t offset, uint64_t length) override {
    // fallocate(2), not glibc's posix_fallocate: where the filesystem lacks fallocate, glibc
    // emulates it by writing a byte into every block, which on blobfuse means uploading zeros.
    // We want the refusal instead, and then write without reserving.
    if (::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) {
      return Ok();
    }
    int err = errno;
    if (err == EOPNOTSUPP || err == ENOSYS || err == EINVAL) {
      return Fail(Code::kNotSupported,
                  "fallocate refused by the filesystem: " +
                      PosixError("fallocate", "fd " + std::to_string(fd), err).message());
    }
    return Fail(PosixError("fallocate", "fd " + std::to_string(fd), err));
  }

  Status Truncate(int fd, uint64_t length) override {
    if (::ftruncate(fd, static_cast<off_t>(length)) != 0) {
      return Fail(PosixError("ftruncate", "fd " + std::to_string(fd), errno));
    }
    return Ok();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return Fail(PosixError("rename", from + " -> " + to, errno));
    }
    return Ok();
  }

  Status RenameNoReplace(const std::string& from, const std::string& to) override {
    if (::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) ==
        0) {
      return Ok();
    }
    int err = errno;
    if (err == EEXIST) return Fail(Code::kAlreadyExists, to + " already exists");
    if (err != EINVAL && err != ENOSYS && err != EOPNOTSUPP) {
      return Fail(PosixError("renameat2", from + " -> " + to, err));
    }
    // The filesystem lacks RENAME_NOREPLACE (FUSE without it): check, then rename.
    struct stat st;
    if (::stat(to.c_str(), &st) == 0) return Fail(Code::kAlreadyExists, to + " already exists");
    return Rename(from, to);
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Fail(PosixError("unlink", path, errno));
    return Ok();
  }

  Status SyncFilesystem(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Fail(PosixError("open", path, errno));
    struct statfs fs {};
    if (::fstatfs(fd, &fs) != 0) {
      int err = errno;
      ::close(fd);
      return Fail(PosixError("statfs", path, err));
    }
    // Magic numbers from linux/magic.h: the local file systems whose syncfs is known to commit
    // every file's data and every rename (since Linux 5.8 syncfs also reports writeback errors).
    switch (static_cast<unsigned long>(fs.f_type)) {
      case 0xEF53:      // EXT4_SUPER_MAGIC (ext2/3/4)
      case 0x58465342:  // XFS_SUPER_MAGIC
      case 0x9123683E:  // BTRFS_SUPER_MAGIC
      case 0x01021994:  // TMPFS_MAGIC
        break;
      default:
        ::close(fd);
        char type[24];
        std::snprintf(type, sizeof type, "0x%lx", static_cast<unsigned long>(fs.f_type));
        return Fail(Code::kNotSupported, "syncfs " + path + ": file system type " +
                                             std::string(type) + " is synced file by file");
    }
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return Fail(PosixError("syncfs", path, err));
    return Ok();
  }

  Status FsyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Fail(PosixError("open dir", dir, errno));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    // Some FUSE filesystems reject fsync on directories; the rename is then as durable as the
    // filesystem can make it.
    if (rc != 0 && err != EINVAL && err != ENOSYS && err != EOPNOTSUPP) {
      return Fail(PosixError("fsync dir", dir, err));
    }
    return Ok();
  }

  Status CreateDirs(const std::string& dir) override {
    std::string partial;
    size_t pos = 0;
    while (pos != std::string::npos) {
      pos = dir.find('/', pos + 1);
      partial = dir.substr(0, pos);
      if (partial.empty()) continue;
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
        return Fail(PosixError("mkdir", partial, errno));
      }
    }
    return Ok();
  }

  Status RevalidateAttributes(const std::string& path) override {
    struct statx stx {};
    if (::statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_SIZE | STATX_MTIME, &stx) != 0)
      return Fail(PosixError("statx", path, errno));
    return Ok();
  }

  Result<FileInfo> Stat(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Fail(PosixError("stat", path, errno));
    return ToFileInfo(st);
  }

  static FileInfo ToFileInfo(const struct stat& st) {
    FileInfo info;
    info.size = static_cast<uint64_t>(st.st_size);
    info.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    info.inode = st.st_ino;
    info.is_dir = S_ISDIR(st.st_mode);
    return info;
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Fail(PosixError("opendir", dir, errno));
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    ::closedir(d);
    return names;
  }

  Result<std::unique_ptr<MappedFile>> MapReadOnly(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return Fail(PosixError("open", path, errno));
    auto mapped = MapFd(fd, path);
    ::close(fd);
    return mapped;
  }

  Result<std::unique_ptr<MappedFile>> MapFd(int fd, const std::string& path) override {
    MS_RETURN_IF_ERROR(RequireRegular(fd, path));
    struct stat st;
    if (::fstat(fd, &st) != 0) return Fail(PosixError("fstat", path, errno));
    if (st.st_size == 0) return Fail(Code::kCorruption, path + ": file is empty");
    const size_t size = static_cast<size_t>(st.st_size);
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) return Fail(PosixError("mmap", path, errno));
    int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) {
      int err = errno;
      ::munmap(addr, size);
      return Fail(PosixError("dup", path, err));
    }
    return std::unique_ptr<MappedFile>(new PosixMappedFile(path, addr, size, own));
  }

  Status PopulateRead(std::span<const std::byte> region) override {
    if (region.empty()) return Ok();
    void* addr = const_cast<std::byte*>(region.data());
    // MADV_POPULATE_READ may stop early and ask to be called again (EINTR, EAGAIN).
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (::madvise(addr, region.size(), kMadvPopulateRead) == 0) return Ok();
      int err = errno;
      if (err == EINTR || err == EAGAIN) continue;
      if (err == EINVAL) {
        return Fail(Code::kNotSupported, "madvise(MADV_POPULATE_READ) not supported by the kernel");
      }
      if (err == EFAULT) {
        return Fail(Code::kIOError,
                    "madvise(MADV_POPULATE_READ): EFAULT (file shorter than its mapping: "
                    "truncated under it?)");
      }
      return Fail(PosixError("madvise(MADV_POPULATE_READ)", "", err));
    }
    return Fail(Code::kIOError, "madvise(MADV_POPULATE_READ): still interrupted after 100 tries");
  }

  Status AdviseWillNeed(std::span<const std::byte> region) override {
    if (region.empty()) return Ok();
    if (::madvise(const_cast<std::byte*>(region.data()), region.size(), MADV_WILLNEED) != 0) {
      return Fail(PosixError("madvise(MADV_WILLNEED)", "", errno));
    }
    return Ok();
  }

  Status DropFileCache(const std::string& path) override {
    // O_NONBLOCK: whatever the path names now (a FIFO?) must not block the reclaim.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return Fail(PosixError("open", path, errno));
    int rc = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // returns the error, not errno
    ::close(fd);
    if (rc != 0) return Fail(PosixError("posix_fadvise(DONTNEED)", path, rc));
    return Ok();
  }

  Status AdviseSequential(int fd) override {
    const int rc = ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // returns the error
    if (rc != 0)
      return Fail(PosixError("posix_fadvise(SEQUENTIAL)", "fd " + std::to_string(fd), rc));
    return Ok();
  }

  Result<uint64_t> ResidentBytes(std::span<const std::byte> region) override {
    if (region.empty()) return uint64_t{0};
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> vec((region.size() + page - 1) / page);
    if (::mincore(const_cast<std::byte*>(region.data()), region.size(), vec.data()) != 0) {
      return Fail(PosixError("mincore", "", errno));
    }
    uint64_t pages = 0;
    for (unsigned char v : vec)
      pages += v & 1;
    return std::min<uint64_t>(pages * page, region.size());
  }

  int64_t NowMonotonicNanos() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t NowUnixNanos() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void SleepForNanos(int64_t nanos) override {
    std::this_thread::sleep_for(std::chrono::nanoseconds(nanos));
  }
};

}  // namespace

Env* DefaultEnv() {
  static PosixEnv env;
  return &env;
}

}  // namespace modelswap
