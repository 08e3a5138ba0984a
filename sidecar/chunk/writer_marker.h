// Writer-in-flight markers: how a chunked write and the chunk GC keep out of each other's way.
//
//   <root>/.chunks/.writers/<model>.<version>.<pid>-<ns>   a writer is uploading chunks
//   <root>/.chunks/.gc/<pid>-<ns>                            a GC is deciding what to remove
//
// The race they close: a writer finds chunk X already stored (Has), skips uploading it, and
// publishes a recipe naming X, while a GC that read the recipes before that one existed removes
// X. Each side creates its own marker first and only then looks for the other's (the flag
// protocol of Dekker's and Peterson's algorithms: with creation visible to a later listing, at
// least one side sees the other):
//   - a writer creates its marker before its first Has/Put and removes it after the recipe is
//     published; CreateWriterMarker fails with kUnavailable (retry later) while a fresh GC
//     marker exists, removing its own marker again;
//   - GC creates its marker, then stops (removing nothing) while any fresh writer marker exists.
// A writer marker is fresh while younger than the GC's grace period (hours: a write can be
// long; one that runs longer refreshes its marker, RefreshMarker). A GC marker is fresh while
// younger than kGcMarkerMaxAgeNs: the GC refreshes it at least every kGcMarkerRefreshNs while it
// runs, so a crashed GC blocks writers for minutes, not hours. By mtime; a crashed process's
// marker ages out.
//
// Thread safety: plain functions over the Env.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::chunk {

inline constexpr char kWritersDir[] = ".chunks/.writers";
inline constexpr char kGcDir[] = ".chunks/.gc";

inline constexpr int64_t kGcMarkerMaxAgeNs = int64_t{10} * 60 * 1'000'000'000;
inline constexpr int64_t kGcMarkerRefreshNs = int64_t{60} * 1'000'000'000;

struct MarkerInfo {
  std::string rel;  // relative to root
  int64_t mtime_ns = 0;
};

// Creates a writer marker (fsynced) and returns its path relative to root. kUnavailable if a GC
// marker younger than kGcMarkerMaxAgeNs exists (the writer's marker is removed again).
[[nodiscard]] Result<std::string> CreateWriterMarker(Env* env, const std::string& root,
                                                     std::string_view model,
                                                     std::string_view version);
// Creates a GC marker (fsynced) and returns its path relative to root.
[[nodiscard]] Result<std::string> CreateGcMarker(Env* env, const std::string& root);
// Rewrites the marker's content (the time now), which moves its mtime forward.
[[nodiscard]] Status RefreshMarker(Env* env, const std::string& root, const std::string& rel);
// Removes a marker (through no symlink). kNotFound if absent.
[[nodiscard]] Status RemoveMarker(Env* env, const std::string& root, const std::string& rel);
// The markers in kWritersDir or kGcDir (`dir`), with their mtimes; none if the folder is absent.
[[nodiscard]] Result<std::vector<MarkerInfo>> ListMarkers(Env* env, const std::string& root,
                                                          const std::string& dir);

}  // namespace modelswap::chunk
