// Decoding of Kubernetes watch streams.
//
// A watch answers HTTP 200 with a chunked body of newline-delimited JSON, one
// {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}} per line (the real server
// sends exactly one event per chunk, but nothing here relies on that: bytes may arrive split
// anywhere). A resourceVersion that fell out of the watch window is NOT an HTTP 410: it is an
// HTTP 200 followed by one ERROR event whose object is a Status with code 410 (see
// tests/operator/testdata/watch-410.wire); WatchErrorToError turns it into an Error for which
// IsExpired() is true.
//
// Thread safety: a WatchDecoder belongs to one stream and one thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "operator/kube/object.h"

namespace modelswap::op {

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view EventTypeName(EventType t);

struct WatchEvent {
  EventType type = EventType::kAdded;
  Json object;
};

// Parses one line of a watch stream (without its '\n').
Result<WatchEvent> ParseWatchLine(std::string_view line);

// The Error an ERROR event stands for (code from its Status: 410 -> IsExpired).
Error WatchErrorToError(const Json& status_object);

// Returns false to stop the stream.
using WatchHandler = std::function<bool(WatchEvent&&)>;

class WatchDecoder {
 public:
  // Feeds bytes as they arrive; calls `out` for every complete line. Returns an error for a
  // malformed line (the stream is then unusable) and a stopped result when `out` returned false.
  // Blank lines (keep-alives) are skipped.
  Result<bool> Feed(std::string_view bytes, const WatchHandler& out);
  // Bytes of an unfinished line; non-empty at end of stream means the stream was cut mid-event.
  size_t pending() const { return buffer_.size(); }

 private:
  std::string buffer_;
};

}  // namespace modelswap::op
