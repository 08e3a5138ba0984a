// Error values for every modelswap module.
//
// A fallible function returns Result<T> (std::expected<T, Error>) or Status (no value). An Error is
// a Code plus a message that names the failed step or check ("msf: section 1 checksum mismatch").
// Codes follow abseil's: each says whether retrying can help, so callers (the agent's retry loop,
// the operator's reconciler) decide from the code alone. No exceptions cross module boundaries:
// code that calls throwing libraries (nlohmann_json, cpprestsdk, Boost) catches at its edge.
//
// Thread safety: plain values; safe to copy between threads.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace modelswap {

enum class Code {
  kOk = 0,
  // The caller's input is wrong (bad flag, malformed CR, bad name). Do not retry unchanged.
  kInvalidArgument,
  // A file or object does not exist. Retry only if something else will create it.
  kNotFound,
  // Creating something that already exists (a published version). Do not retry.
  kAlreadyExists,
  // Stored bytes fail a check (checksum, magic, bounds). Do not retry the same bytes; a new
  // version of them (a republished manifest) may be fine.
  kCorruption,
  // The OS refused an I/O call (EIO, ENOSPC, EACCES...). Usually transient: retry with backoff.
  kIOError,
  // The filesystem or kernel lacks a feature (fallocate on blobfuse). Take the fallback path.
  kNotSupported,
  // A peer (API server, agent) could not be reached. Retry with backoff.
  kUnavailable,
  // The system is not in a state the call needs (no active version yet). Retry after it changes.
  kFailedPrecondition,
  // A concurrent change won (409 Conflict, lost lease). Retry at a higher level: re-read, redo.
  kAborted,
  kDeadlineExceeded,
  kPermissionDenied,
  // A bug or broken invariant. Not retryable.
  kInternal,
};

std::string_view CodeName(Code code);

class [[nodiscard]] Error {
 public:
  Error(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "context: message"; keeps the code. Used to add the path or step a low-level error hit.
  Error Context(std::string_view context) const {
    return Error(code_, std::string(context) + ": " + message_);
  }
  // "<CodeName>: message", for logs and CLI output.
  std::string ToString() const { return std::string(CodeName(code_)) + ": " + message_; }

  // Whether the same call may succeed later without anyone changing the input.
  bool Retryable() const {
    return code_ == Code::kIOError || code_ == Code::kUnavailable || code_ == Code::kAborted ||
           code_ == Code::kDeadlineExceeded || code_ == Code::kFailedPrecondition;
  }

 private:
  Code code_;
  std::string message_;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> Fail(Code code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}
inline std::unexpected<Error> Fail(Error error) {
  return std::unexpected<Error>(std::move(error));
}

inline Status Ok() {
  return {};
}

inline std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kNotFound:
      return "NotFound";
    case Code::kAlreadyExists:
      return "AlreadyExists";
    case Code::kCorruption:
      return "Corruption";
    case Code::kIOError:
      return "IOError";
    case Code::kNotSupported:
      return "NotSupported";
    case Code::kUnavailable:
      return "Unavailable";
    case Code::kFailedPrecondition:
      return "FailedPrecondition";
    case Code::kAborted:
      return "Aborted";
    case Code::kDeadlineExceeded:
      return "DeadlineExceeded";
    case Code::kPermissionDenied:
      return "PermissionDenied";
    case Code::kInternal:
      return "Internal";
  }
  return "Unknown";
}

}  // namespace modelswap

// Propagates an error from a Status or Result expression; for Result, binds nothing.
#define MS_RETURN_IF_ERROR(expr)                                                \
  do {                                                                          \
    if (auto ms_status_ = (expr); !ms_status_) return Fail(ms_status_.error()); \
  } while (0)

// `MS_ASSIGN_OR_RETURN(auto x, Foo());` binds the value or returns the error.
#define MS_CONCAT_INNER(a, b) a##b
#define MS_CONCAT(a, b) MS_CONCAT_INNER(a, b)
#define MS_ASSIGN_OR_RETURN(lhs, expr) \
  MS_ASSIGN_OR_RETURN_IMPL(MS_CONCAT(ms_result_, __LINE__), lhs, expr)
#define MS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp) return Fail(std::move(tmp).error()); \
  lhs = std::move(*tmp)
