// Watch stream decoding; see watch.h.
#include "operator/kube/watch.h"

#include "operator/kube/api_error.h"

namespace modelswap::op {

std::string_view EventTypeName(EventType t) {
  switch (t) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
    case EventType::kBookmark:
      return "BOOKMARK";
    case EventType::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

Result<WatchEvent> ParseWatchLine(std::string_view line) {
  Json doc = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Fail(Code::kCorruption,
                "watch: event is not a JSON object: " + std::string(line.substr(0, 120)));
  }
  auto type = doc.find("type");
  auto object = doc.find("object");
  if (type == doc.end() || !type->is_string()) {
    return Fail(Code::kCorruption, "watch: event has no string \"type\"");
  }
  if (object == doc.end() || !object->is_object()) {
    return Fail(Code::kCorruption, "watch: event has no \"object\"");
  }
  WatchEvent ev;
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "ADDED")
    ev.type = EventType::kAdded;
  else if (t == "MODIFIED")
    ev.type = EventType::kModified;
  else if (t == "DELETED")
    ev.type = EventType::kDeleted;
  else if (t == "BOOKMARK")
    ev.type = EventType::kBookmark;
  else if (t == "ERROR")
    ev.type = EventType::kError;
  else
    return Fail(Code::kCorruption, "watch: unknown event type \"" + t + "\"");
  ev.object = std::move(*object);
  return ev;
}

Error WatchErrorToError(const Json& status_object) {
  auto status = ApiStatusFromJson(status_object);
  if (!status) return Error(Code::kUnavailable, "watch: ERROR event without a Status object");
  return ApiErrorFromStatus("watch ERROR event", *status);
}

Result<bool> WatchDecoder::Feed(std::string_view bytes, const WatchHandler& out) {
  buffer_.append(bytes);
  size_t start = 0;
  for (;;) {
    size_t nl = buffer_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buffer_.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    auto ev = ParseWatchLine(line);
    if (!ev) {
      buffer_.clear();
      return Fail(ev.error());
    }
    if (!out(std::move(*ev))) {
      buffer_.erase(0, start);
      return false;
    }
  }
  buffer_.erase(0, start);
  return true;
}

}  // namespace modelswap::op
