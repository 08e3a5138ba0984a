// Internal helpers shared by the fake API server's source files (not a public header).
#pragma once

#include <chrono>
#include <cstdlib>
#include <string>

#include "operator/kube/object.h"
#include "operator/kube/resource.h"

namespace modelswap::fake::internal {

inline std::string ResourceKey(const op::ResourceRef& r) {
  return r.group + "/" + r.plural;
}

inline std::string Now() {
  return op::FormatTime(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
}

// "modelversions.modelswap.io" / "pods": how Status messages name a resource.
inline std::string Qualified(const op::ResourceRef& r) {
  return r.group.empty() ? r.plural : r.plural + "." + r.group;
}

inline uint64_t ParseRv(const std::string& s) {
  return s.empty() ? 0 : std::strtoull(s.c_str(), nullptr, 10);
}

}  // namespace modelswap::fake::internal
