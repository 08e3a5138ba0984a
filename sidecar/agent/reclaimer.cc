// Reclaim decisions and dropping a version's mapping and pages.
#include "sidecar/agent/reclaimer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace modelswap::agent {

int HoldersOf(uint64_t generation, const std::vector<ctl::SlotView>& live) {
  int n = 0;
  for (const auto& s : live)
    n += s.Holds(generation) ? 1 : 0;
  return n;
}

std::string ReclaimReason(const LoadedVersion& v, const std::vector<ctl::SlotView>& live,
                          int64_t now_ns, int64_t grace_ns) {
  if (HoldersOf(v.manifest.generation, live) == 0) return "no live reader holds it";
  if (now_ns - v.retired_at_ns >= grace_ns) return "grace period over";
  return "";
}

void DropVersion(Env* env, LoadedVersion& v, const std::vector<std::string>& keep_paths) {
  auto kept = [&](const std::string& p) {
    return std::find(keep_paths.begin(), keep_paths.end(), p) != keep_paths.end();
  };
  v.mapping.reset();
  if (v.chunked) {
    // The assembled file belongs to the node cache and may be mapped by other pods of the node:
    // its pages are left to them, the file to eviction (which it may take once we stop holding).
    v.hold.Release();
    return;
  }
  std::vector<std::string> paths{v.mapped_path};
  if (v.source_path != v.mapped_path) paths.push_back(v.source_path);
  for (const std::string& path : paths) {
    if (kept(path)) continue;
    if (auto st = env->DropFileCache(path); !st) {
      spdlog::debug("reclaim drop-cache path={} err=\"{}\"", path, st.error().message());
    }
  }
  if (v.staged && !kept(v.mapped_path)) {
    if (auto st = env->Remove(v.mapped_path); !st) {
      spdlog::warn("reclaim remove-staged path={} err=\"{}\"", v.mapped_path, st.error().message());
    }
  }
}

}  // namespace modelswap::agent
