// Mapping of Kubernetes Status objects to modelswap Errors; see api_error.h.
#include "operator/kube/api_error.h"

#include <charconv>

namespace modelswap::op {

using nlohmann::json;

Result<ApiStatus> ApiStatusFromJson(const json& obj) {
  if (!obj.is_object() || obj.value("kind", "") != "Status") {
    return Fail(Code::kInvalidArgument, "api status: body is not a Status object");
  }
  ApiStatus s;
  s.code = obj.value("code", 0);
  s.status = obj.value("status", "");
  s.reason = obj.value("reason", "");
  s.message = obj.value("message", "");
  if (auto it = obj.find("details"); it != obj.end() && it->is_object()) {
    s.details = *it;
    if (auto r = it->find("retryAfterSeconds"); r != it->end() && r->is_number_integer()) {
      s.retry_after_seconds = r->get<int>();
    }
  }
  return s;
}

Result<ApiStatus> ParseApiStatus(std::string_view body) {
  json obj = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) return Fail(Code::kInvalidArgument, "api status: body is not JSON");
  return ApiStatusFromJson(obj);
}

Code CodeForHttpStatus(int http_code, std::string_view reason) {
  switch (http_code) {
    case 400:
      return Code::kInvalidArgument;
    case 401:
    case 403:
      return Code::kPermissionDenied;
    case 404:
      return Code::kNotFound;
    case 409:
      return reason == "AlreadyExists" ? Code::kAlreadyExists : Code::kAborted;
    case 410:
      return Code::kFailedPrecondition;
    case 422:
      return Code::kInvalidArgument;
    case 429:
      return Code::kUnavailable;
    case 504:
      return Code::kDeadlineExceeded;
    default:
      break;
  }
  if (http_code >= 500) return Code::kUnavailable;
  if (http_code >= 400) return Code::kInvalidArgument;
  return Code::kInternal;  // a non-error status reported as an error is a bug
}

Error ApiErrorFromStatus(std::string_view context, const ApiStatus& s) {
  std::string msg = std::string(context) + ": HTTP " + std::to_string(s.code);
  if (!s.reason.empty()) msg += " " + s.reason;
  if (!s.message.empty()) msg += ": " + s.message;
  if (s.retry_after_seconds)
    msg += " (retry-after=" + std::to_string(*s.retry_after_seconds) + "s)";
  return Error(CodeForHttpStatus(s.code, s.reason), std::move(msg));
}

Error ApiError(std::string_view context, int http_code, std::string_view body,
               std::optional<int> retry_after_header) {
  ApiStatus s;
  if (auto parsed = ParseApiStatus(body)) {
    s = *parsed;
  } else {
    // Not a Status (a proxy's page): keep the start of the body so the cause stays visible.
    s.message = std::string(body.substr(0, 200));
  }
  s.code = http_code;  // the HTTP status wins over a body that disagrees
  if (retry_after_header) s.retry_after_seconds = retry_after_header;
  return ApiErrorFromStatus(context, s);
}

std::optional<std::chrono::seconds> RetryAfter(const Error& error) {
  const std::string& m = error.message();
  auto pos = m.rfind("(retry-after=");
  if (pos == std::string::npos) return std::nullopt;
  const char* begin = m.data() + pos + 13;
  int value = 0;
  auto [ptr, ec] = std::from_chars(begin, m.data() + m.size(), value);
  if (ec != std::errc() || ptr == begin || value < 0) return std::nullopt;
  return std::chrono::seconds(value);
}

}  // namespace modelswap::op
