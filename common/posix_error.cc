// errno to Status (posix_error.h): one mapping from an errno to a Code, and the message format
// "<call> <path>: <strerror text>" every POSIX failure in modelswap is reported with.
#include "common/posix_error.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace modelswap {

namespace {
Code CodeForErrno(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Code::kNotFound;
    case EEXIST:
    case ENOTEMPTY:
      return Code::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return Code::kPermissionDenied;
    case EOPNOTSUPP:
    case ENOSYS:
      return Code::kNotSupported;
    case EINVAL:
      return Code::kInvalidArgument;
    default:
      return Code::kIOError;
  }
}
}  // namespace

Error PosixError(std::string_view call, std::string_view path, int err) {
  // strerrordesc_np, not strerror: thread-safe (a static table), and the same English text.
  const char* text = ::strerrordesc_np(err);
  return Error(CodeForErrno(err), std::string(call) + " " + std::string(path) + ": " +
                                      (text != nullptr ? text : "errno " + std::to_string(err)));
}

}  // namespace modelswap
