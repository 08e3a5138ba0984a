// Range copies, allocated sizes, timestamps (file_ops.h).
#include "sidecar/cache/file_ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/posix_error.h"

namespace modelswap::cache {
namespace {

bool CannotClone(int err) {
  return err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ETXTBSY || err == EPERM ||
         err == ENOTTY || err == ENOSYS;
}

bool CannotCopyFileRange(int err) {
  return err == EXDEV || err == EOPNOTSUPP || err == EINVAL || err == ENOSYS;
}

Status PreadPwrite(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off, uint64_t len,
                   const std::string& dst_path) {
  std::vector<char> buf(std::min<uint64_t>(len, 1 << 20));
  while (len > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(len, buf.size()));
    ssize_t n = ::pread(src_fd, buf.data(), want, static_cast<off_t>(src_off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("pread (copy source)", dst_path));
    if (n == 0) return Fail(Code::kIOError, "copy into " + dst_path + ": source ended early");
    size_t done = 0;
    while (done < static_cast<size_t>(n)) {
      ssize_t w = ::pwrite(dst_fd, buf.data() + done, static_cast<size_t>(n) - done,
                           static_cast<off_t>(dst_off + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Fail(ErrnoError("pwrite", dst_path));
      done += static_cast<size_t>(w);
    }
    src_off += static_cast<uint64_t>(n);
    dst_off += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return Ok();
}

// copy_file_range, looped over short copies; kNotSupported when the kernel or file system
// cannot (the caller then falls back to PreadPwrite for what is left).
Status KernelCopy(int src_fd, uint64_t* src_off, int dst_fd, uint64_t* dst_off, uint64_t* len,
                  const std::string& dst_path) {
  while (*len > 0) {
    loff_t in = static_cast<loff_t>(*src_off), out = static_cast<loff_t>(*dst_off);
    ssize_t n = ::copy_file_range(src_fd, &in, dst_fd, &out, static_cast<size_t>(*len), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && CannotCopyFileRange(errno)) {
      return Fail(Code::kNotSupported, "copy_file_range: " + std::string(strerrordesc_np(errno)));
    }
    if (n < 0) return Fail(ErrnoError("copy_file_range", dst_path));
    if (n == 0) return Fail(Code::kIOError, "copy into " + dst_path + ": source ended early");
    *src_off += static_cast<uint64_t>(n);
    *dst_off += static_cast<uint64_t>(n);
    *len -= static_cast<uint64_t>(n);
  }
  return Ok();
}

Status CopyBytes(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off, uint64_t len,
                 const std::string& dst_path, CopyState* state) {
  state->bytes_copied.fetch_add(len, std::memory_order_relaxed);
  if (state->try_copy_file_range.load(std::memory_order_relaxed)) {
    Status st = KernelCopy(src_fd, &src_off, dst_fd, &dst_off, &len, dst_path);
    if (st || st.error().code() != Code::kNotSupported) return st;
    state->try_copy_file_range.store(false, std::memory_order_relaxed);
  }
  return PreadPwrite(src_fd, src_off, dst_fd, dst_off, len, dst_path);
}

}  // namespace

Status CopyRange(int src_fd, uint64_t src_off, int dst_fd, uint64_t dst_off, uint64_t len,
                 const std::string& dst_path, CopyState* state) {
  if (len == 0) return Ok();
  struct stat st;
  if (state->try_clone.load(std::memory_order_relaxed) && ::fstat(dst_fd, &st) == 0 &&
      st.st_blksize > 0) {
    uint64_t bs = static_cast<uint64_t>(st.st_blksize);
    // Clone only if source and destination share their offset within a block.
    if (src_off % bs == dst_off % bs) {
      uint64_t head = (bs - dst_off % bs) % bs;
      if (head < len && (len - head) / bs > 0) {
        uint64_t middle = (len - head) / bs * bs;
        struct file_clone_range fcr {};
        fcr.src_fd = src_fd;
        fcr.src_offset = src_off + head;
        fcr.src_length = middle;
        fcr.dest_offset = dst_off + head;
        if (::ioctl(dst_fd, FICLONERANGE, &fcr) == 0) {
          state->bytes_cloned.fetch_add(middle, std::memory_order_relaxed);
          MS_RETURN_IF_ERROR(CopyBytes(src_fd, src_off, dst_fd, dst_off, head, dst_path, state));
          uint64_t tail_off = head + middle;
          return CopyBytes(src_fd, src_off + tail_off, dst_fd, dst_off + tail_off, len - tail_off,
                           dst_path, state);
        }
        if (!CannotClone(errno)) return Fail(ErrnoError("ioctl FICLONERANGE", dst_path));
        state->try_clone.store(false, std::memory_order_relaxed);
      }
    }
  }
  return CopyBytes(src_fd, src_off, dst_fd, dst_off, len, dst_path, state);
}

namespace {
FileUsage UsageOf(const struct stat& st) {
  FileUsage u;
  u.size = static_cast<uint64_t>(st.st_size);
  u.allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  u.atime_ns = static_cast<int64_t>(st.st_atim.tv_sec) * 1'000'000'000 + st.st_atim.tv_nsec;
  u.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  u.regular = S_ISREG(st.st_mode);
  return u;
}

struct timespec Timespec(int64_t ns) {
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}
}  // namespace

Result<FileUsage> StatUsage(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Fail(ErrnoError("lstat", path));
  return UsageOf(st);
}

Result<FileUsage> StatUsageFd(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Fail(ErrnoError("fstat", path));
  return UsageOf(st);
}

Status SetFileTimes(const std::string& path, int64_t atime_ns, int64_t mtime_ns) {
  struct timespec ts[2] = {Timespec(atime_ns), Timespec(mtime_ns)};
  if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    return Fail(ErrnoError("utimensat", path));
  }
  return Ok();
}

Status SetFileTimesFd(int fd, const std::string& path, int64_t atime_ns, int64_t mtime_ns) {
  struct timespec ts[2] = {Timespec(atime_ns), Timespec(mtime_ns)};
  if (::futimens(fd, ts) != 0) return Fail(ErrnoError("futimens", path));
  return Ok();
}

Status MakeReadOnly(int fd, const std::string& path) {
  if (::fchmod(fd, 0444) != 0) return Fail(ErrnoError("fchmod 0444", path));
  return Ok();
}

bool IsNoSpace(const Error& error) {
  const std::string& m = error.message();
  return m.ends_with(strerrordesc_np(ENOSPC)) || m.ends_with(strerrordesc_np(EDQUOT));
}

}  // namespace modelswap::cache
