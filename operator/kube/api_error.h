// Kubernetes API errors as modelswap Errors.
//
// Every failed API call answers with a `Status` object whose `code` equals the HTTP status (see
// tests/operator/testdata/README.md). This file maps it to a Code so the reflector and the
// reconciler decide from the code alone:
//   404 NotFound            -> kNotFound
//   409 AlreadyExists       -> kAlreadyExists (a create lost to an existing object: usually fine)
//   409 Conflict            -> kAborted       (stale resourceVersion: re-read and redo)
//   410 Gone / Expired      -> kFailedPrecondition (resourceVersion too old: relist). Within the
//                              operator no other response maps to this code, so IsExpired() is
//                              exact.
//   400, 422 Invalid        -> kInvalidArgument (terminal: the request itself is wrong)
//   401, 403                -> kPermissionDenied
//   429, 5xx                -> kUnavailable (504 Timeout -> kDeadlineExceeded); a Retry-After
//                              header or details.retryAfterSeconds is kept in the message as
//                              "retry-after=Ns" and read back by RetryAfter().
// Thread safety: pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace modelswap::op {

// The fields of a metav1.Status the operator uses.
struct ApiStatus {
  int code = 0;
  std::string status;  // "Success" | "Failure"
  std::string reason;  // NotFound, Conflict, Expired, Invalid, ...
  std::string message;
  std::optional<int> retry_after_seconds;
  nlohmann::json details;
};

// Parses a Status body; kInvalidArgument if it is not one (an HTML error page from a proxy).
Result<ApiStatus> ParseApiStatus(std::string_view body);
Result<ApiStatus> ApiStatusFromJson(const nlohmann::json& obj);

Code CodeForHttpStatus(int http_code, std::string_view reason);

// Builds the Error for a failed response. `context` names the call ("GET /api/v1/...").
// `retry_after_header` is the Retry-After header value if one was sent.
Error ApiError(std::string_view context, int http_code, std::string_view body,
               std::optional<int> retry_after_header = std::nullopt);
Error ApiErrorFromStatus(std::string_view context, const ApiStatus& status);

// How long the server asked the caller to wait, if it did (429, 504 ResourceVersionTooLarge).
std::optional<std::chrono::seconds> RetryAfter(const Error& error);
// The resourceVersion the call used is too old (HTTP 410, or an ERROR event with code 410).
inline bool IsExpired(const Error& error) {
  return error.code() == Code::kFailedPrecondition;
}
// A list or watch asked for an RV the server does not have yet (504 Timeout with cause
// ResourceVersionTooLarge, rv-too-large.http): e.g. an etcd restored from a backup.
inline bool IsResourceVersionTooLarge(const Error& error) {
  return error.code() == Code::kDeadlineExceeded &&
         error.message().find("Too large resource version") != std::string::npos;
}
inline bool IsConflict(const Error& error) {
  return error.code() == Code::kAborted;
}

}  // namespace modelswap::op
