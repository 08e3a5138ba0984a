// The one place an errno becomes an Error: the code from the errno, the message naming the call
// and the path ("open /models/ranker/manifest.json: No such file or directory").
#pragma once

#include <cerrno>
#include <string_view>

#include "common/status.h"

namespace modelswap {

Error PosixError(std::string_view call, std::string_view path, int err);
// PosixError with the current errno.
inline Error ErrnoError(std::string_view call, std::string_view path) {
  return PosixError(call, path, errno);
}

}  // namespace modelswap
