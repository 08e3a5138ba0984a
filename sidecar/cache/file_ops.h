// The few file system calls the node cache needs that common/env.h does not offer: copying a
// range between files the cheapest way the file system allows, a file's allocated size and its
// two timestamps, making a file read-only, and telling "disk full" apart from other I/O errors.
//
// Range copies (CopyRange) try, in order:
//   1. FICLONERANGE (ioctl_ficlonerange(2)): shares the source's blocks (reflink; XFS, btrfs,
//      bcachefs, OCFS2). Offsets and length must be multiples of the file system's block size,
//      so only the block-aligned middle of a range is cloned; the head and tail are copied.
//      EOPNOTSUPP / EXDEV / EINVAL / ETXTBSY / EPERM / ENOTTY mean "cannot clone here": the
//      caller's CopyState remembers it and stops trying.
//   2. copy_file_range(2): an in-kernel copy (no trip through user space; NFS and CIFS offload
//      it to the server). It may copy less than asked: looped. EXDEV (other file systems before
//      5.3 and from 5.19 on), EOPNOTSUPP, EINVAL, ENOSYS fall through to 3, remembered.
//   3. pread + pwrite through a 1 MiB buffer.
//
// Thread safety: functions are thread-safe; a CopyState belongs to one assembly (its flags are
// atomics with relaxed order: they are hints that only ever go from true to false).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace modelswap::cache {

struct CopyState {
  std::atomic<bool> try_clone{true};
  std::atomic<bool> try_copy_file_range{true};
  std::atomic<uint64_t> bytes_cloned{0};
  std::atomic<uint64_t> bytes_copied{0};
};

// Copies [src_off, src_off + len) of src_fd to dst_off of dst_fd. `dst_path` names errors.
[[nodiscard]] Status CopyRange(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off,
                               uint64_t len, const std::string& dst_path, CopyState* state);

struct FileUsage {
  uint64_t size = 0;
  uint64_t allocated = 0;  // st_blocks * 512: holes are not counted
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  bool regular = false;
};
// lstat (a symlink is reported as not regular). kNotFound if missing.
[[nodiscard]] Result<FileUsage> StatUsage(const std::string& path);
// The same for an open descriptor.
[[nodiscard]] Result<FileUsage> StatUsageFd(int fd, const std::string& path);

// Sets atime and mtime (nanoseconds since the epoch) of path / of fd.
[[nodiscard]] Status SetFileTimes(const std::string& path, int64_t atime_ns, int64_t mtime_ns);
[[nodiscard]] Status SetFileTimesFd(int fd, const std::string& path, int64_t atime_ns,
                                    int64_t mtime_ns);

// fchmod 0444: what the cache publishes is never written again.
[[nodiscard]] Status MakeReadOnly(int fd, const std::string& path);

// Whether an Error came from ENOSPC or EDQUOT (PosixError's message ends with its text).
bool IsNoSpace(const Error& error);

}  // namespace modelswap::cache
