// The operating system behind one narrow interface: files, directories, rename, fsync,
// fallocate, read-only mappings with madvise, and the clock.
//
// Everything that touches the model volume or the clock goes through an Env that the caller
// passes in (never a global), so tests can inject the failures blob storage produces: EIO on the
// Nth read, short files, rename done as copy + delete (blobfuse), fallocate refused, a fake clock.
// EnvWrapper forwards every call; a test Env overrides only what it needs.
//
// Errors: every method returns a Status/Result whose message names the path and the syscall
// ("open /models/ranker/manifest.json: No such file or directory"). errno becomes a Code in one
// place (posix_error.cc, PosixError).
//
// Thread safety: PosixEnv is stateless and safe to share. Test Envs document their own rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace modelswap {

// A read-only view of a whole file, valid until the object is destroyed. PosixEnv maps it
// MAP_SHARED and keeps a descriptor of the mapped inode open beside it.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual std::span<const std::byte> bytes() const = 0;
  virtual const std::string& path() const = 0;
  // The mapped file's size now (fstat of the mapped inode, not of whatever the path names now):
  // below bytes().size() the file was truncated under the mapping, and touching the pages past
  // its end raises SIGBUS. kNotSupported where the mapping keeps no descriptor.
  virtual Result<uint64_t> CurrentFileSize() const {
    return std::unexpected(Error(Code::kNotSupported, "mapping keeps no descriptor"));
  }
};

struct FileInfo {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool is_dir = false;
};

enum class OpenMode {
  kRead,          // O_RDONLY
  kCreateNew,     // O_WRONLY|O_CREAT|O_EXCL: fails with kAlreadyExists if present
  kReadWriteNew,  // O_RDWR|O_CREAT|O_EXCL
  kTruncate,      // O_WRONLY|O_CREAT|O_TRUNC
};

class Env {
 public:
  virtual ~Env() = default;

  // File descriptors are plain ints so callers can pass them to other APIs (mmap, fadvise).
  virtual Result<int> Open(const std::string& path, OpenMode mode) = 0;
  // Opens `rel`, a relative path, beneath the directory `root` without ever leaving it: every
  // path read or written on the model volume goes through here, so a symlink planted on the
  // volume cannot point the agent or the writer at a file outside it. openat2(RESOLVE_BENEATH |
  // RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) where the kernel has it (Linux >= 5.6), else
  // one component at a time with O_NOFOLLOW. root itself may be reached through symlinks (it is
  // the operator's mount point). kPermissionDenied naming the path for a symlink anywhere below
  // root, a ".." component or an absolute rel.
  // kRead opens only regular files: with O_NONBLOCK, so a FIFO (or a device) in the file's place
  // cannot block the open until a writer comes, then fstat; anything else is kInvalidArgument
  // "not a regular file".
  virtual Result<int> OpenBeneath(const std::string& root, const std::string& rel,
                                  OpenMode mode) = 0;
  // fstat of an open descriptor.
  virtual Result<FileInfo> StatFd(int fd) = 0;
  virtual void Close(int fd) = 0;
  // Reads up to out.size() bytes at offset; returns how many were read (0 at end of file).
  virtual Result<size_t> PRead(int fd, std::span<std::byte> out, uint64_t offset) = 0;
  // Writes all of data at offset, retrying short writes.
  virtual Status PWrite(int fd, std::span<const std::byte> data, uint64_t offset) = 0;
  virtual Status Fsync(int fd) = 0;
  // Reserves space. kNotSupported when the filesystem refuses (blobfuse, some FUSE, tmpfs on old
  // kernels): callers then simply write without reserving.
  virtual Status Fallocate(int fd, uint64_t offset, uint64_t length) = 0;
  virtual Status Truncate(int fd, uint64_t length) = 0;

  // Atomic replace of `to` (POSIX rename). On blobfuse this is really copy + delete.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Like Rename but fails with kAlreadyExists if `to` exists. Uses RENAME_NOREPLACE where the
  // filesystem supports it, else an existence check then rename (racy only against another
  // writer of the same name, which the operator never runs).
  virtual Status RenameNoReplace(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  virtual Status FsyncDir(const std::string& dir) = 0;
  virtual Status CreateDirs(const std::string& dir) = 0;
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  // Makes the kernel fetch path's attributes afresh (statx AT_STATX_FORCE_SYNC). On FUSE mounts
  // (blobfuse, bindfs) this ends the attribute cache's window, in which a replaced file still
  // shows its old size and mtime and reads can return the old bytes from the page cache; on
  // local filesystems it costs one stat. kNotFound if path does not exist.
  virtual Status RevalidateAttributes(const std::string& path) = 0;
  // Names (not paths) of the entries of dir, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;

  // Maps the whole file read-only. kCorruption for an empty file (nothing to map). Like
  // OpenBeneath's kRead, refuses (kInvalidArgument) anything but a regular file without blocking.
  virtual Result<std::unique_ptr<MappedFile>> MapReadOnly(const std::string& path) = 0;
  // Maps the whole of the regular file open as fd (the caller still closes fd; the mapping keeps
  // its own descriptor). `path` names it in errors and MappedFile::path().
  virtual Result<std::unique_ptr<MappedFile>> MapFd(int fd, const std::string& path) = 0;

  // Page-cache control over (page-aligned) ranges of a MapReadOnly mapping; the agent's prefault,
  // reclaim and status use these.
  //
  // Faults every page of `region` into the mapping (MADV_POPULATE_READ, Linux >= 5.14) without
  // ever raising SIGBUS. kNotSupported where the kernel lacks it (EINVAL): callers fall back to
  // AdviseWillNeed and touching each page. kIOError when a page cannot be read: EFAULT (the file
  // was truncated under the mapping) or EIO.
  virtual Status PopulateRead(std::span<const std::byte> region) = 0;
  // Starts asynchronous read-ahead of `region` (MADV_WILLNEED). Never faults.
  virtual Status AdviseWillNeed(std::span<const std::byte> region) = 0;
  // Drops the file's clean pages from the page cache (posix_fadvise POSIX_FADV_DONTNEED). Pages
  // some process still maps stay; it is a hint, so success says nothing about what was dropped.
  virtual Status DropFileCache(const std::string& path) = 0;
  // Tells the kernel fd will be read once, front to back (POSIX_FADV_SEQUENTIAL: a larger
  // read-ahead window), so a cold read streams at the disk's speed. A hint: errors are only
  // reported, never fatal to the read.
  virtual Status AdviseSequential(int fd) = 0;
  // Bytes of `region` resident in memory (mincore). Never faults.
  virtual Result<uint64_t> ResidentBytes(std::span<const std::byte> region) = 0;

  // Monotonic and wall clocks, and sleeping, so tests can run time forward.
  virtual int64_t NowMonotonicNanos() = 0;
  virtual int64_t NowUnixNanos() = 0;
  virtual void SleepForNanos(int64_t nanos) = 0;

  // This boot's id (/proc/sys/kernel/random/boot_id, random per boot, without its newline):
  // what tells data that may not have survived a node crash (written, never fsynced, during
  // another boot) from data this boot wrote. Not pure virtual so test Envs need not define it;
  // the default reads the file through this Env (defined below).
  virtual Result<std::string> BootId();

  // Makes every write to the local file system holding `path` durable with one syncfs(2): data,
  // inodes and directory entries (renames), one journal commit instead of one per file, which is
  // what a store of thousands of small files needs. kNotSupported where one call is not known to
  // be enough: FUSE (blobfuse: a file is uploaded when it is flushed, and syncfs is not passed to
  // the daemon), network file systems, anything but ext4, XFS, btrfs and tmpfs; the caller then
  // fsyncs file by file. Not pure virtual: the default says kNotSupported, so test Envs and
  // wrappers fall back to per-file fsyncs unless they opt in.
  virtual Status SyncFilesystem(const std::string& path) {
    return Fail(Code::kNotSupported, "syncfs " + path + ": not supported by this Env");
  }
};

// The real OS. Stateless; one shared instance.
Env* DefaultEnv();

// Forwards every call to a target Env; subclass and override what a test needs to change.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }

  Result<int> Open(const std::string& p, OpenMode m) override { return target_->Open(p, m); }
  Result<int> OpenBeneath(const std::string& root, const std::string& rel, OpenMode m) override {
    return target_->OpenBeneath(root, rel, m);
  }
  Result<FileInfo> StatFd(int fd) override { return target_->StatFd(fd); }
  void Close(int fd) override { target_->Close(fd); }
  Result<size_t> PRead(int fd, std::span<std::byte> out, uint64_t off) override {
    return target_->PRead(fd, out, off);
  }
  Status PWrite(int fd, std::span<const std::byte> data, uint64_t off) override {
    return target_->PWrite(fd, data, off);
  }
  Status Fsync(int fd) override { return target_->Fsync(fd); }
  Status Fallocate(int fd, uint64_t off, uint64_t len) override {
    return target_->Fallocate(fd, off, len);
  }
  Status Truncate(int fd, uint64_t len) override { return target_->Truncate(fd, len); }
  Status Rename(const std::string& f, const std::string& t) override {
    return target_->Rename(f, t);
  }
  Status RenameNoReplace(const std::string& f, const std::string& t) override {
    return target_->RenameNoReplace(f, t);
  }
  Status Remove(const std::string& p) override { return target_->Remove(p); }
  Status FsyncDir(const std::string& d) override { return target_->FsyncDir(d); }
  Status CreateDirs(const std::string& d) override { return target_->CreateDirs(d); }
  Result<FileInfo> Stat(const std::string& p) override { return target_->Stat(p); }
  Status RevalidateAttributes(const std::string& p) override {
    return target_->RevalidateAttributes(p);
  }
  Result<std::vector<std::string>> ListDir(const std::string& d) override {
    return target_->ListDir(d);
  }
  Result<std::unique_ptr<MappedFile>> MapReadOnly(const std::string& p) override {
    return target_->MapReadOnly(p);
  }
  Result<std::unique_ptr<MappedFile>> MapFd(int fd, const std::string& p) override {
    return target_->MapFd(fd, p);
  }
  Status PopulateRead(std::span<const std::byte> r) override { return target_->PopulateRead(r); }
  Status AdviseWillNeed(std::span<const std::byte> r) override {
    return target_->AdviseWillNeed(r);
  }
  Status DropFileCache(const std::string& p) override { return target_->DropFileCache(p); }
  Status AdviseSequential(int fd) override { return target_->AdviseSequential(fd); }
  Result<uint64_t> ResidentBytes(std::span<const std::byte> r) override {
    return target_->ResidentBytes(r);
  }
  int64_t NowMonotonicNanos() override { return target_->NowMonotonicNanos(); }
  int64_t NowUnixNanos() override { return target_->NowUnixNanos(); }
  void SleepForNanos(int64_t n) override { target_->SleepForNanos(n); }
  Result<std::string> BootId() override { return target_->BootId(); }
  Status SyncFilesystem(const std::string& p) override { return target_->SyncFilesystem(p); }

 private:
  Env* target_;
};

// Helpers built only on the interface above.

// Reads a whole (small) file: manifests, termination logs. Fails on files over max_bytes.
Result<std::string> ReadFileToString(Env* env, const std::string& path,
                                     uint64_t max_bytes = 16 << 20);
// ReadFileToString and MapReadOnly for `rel` beneath `root` (Env::OpenBeneath's rules): how the
// model volume is read.
Result<std::string> ReadFileBeneath(Env* env, const std::string& root, const std::string& rel,
                                    uint64_t max_bytes = 16 << 20);
Result<std::unique_ptr<MappedFile>> MapReadOnlyBeneath(Env* env, const std::string& root,
                                                       const std::string& rel);
// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data);

inline Result<std::string> Env::BootId() {
  auto id = ReadFileToString(this, "/proc/sys/kernel/random/boot_id", 64);
  if (!id) return id;
  while (!id->empty() && (id->back() == '\n' || id->back() == ' '))
    id->pop_back();
  if (id->empty()) return Fail(Code::kInternal, "/proc/sys/kernel/random/boot_id is empty");
  return id;
}

// Joins path parts with '/'.
std::string JoinPath(std::string_view a, std::string_view b);
std::string DirName(std::string_view path);

}  // namespace modelswap
