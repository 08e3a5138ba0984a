// ModelAgent's volume jobs (model_agent.h): what a poll job found and what a load job was asked
// and produced, shared by the loop (model_agent.cc), the poll (model_agent_poll.cc) and the swap
// (model_agent_swap.cc). Internal to the agent. Thread safety: an outcome is written by its job on
// the VolumeWorker and read by the loop once the worker is idle again (the worker's mutex orders
// the two).
#pragma once

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "common/status.h"
#include "sidecar/agent/loader.h"
#include "sidecar/agent/model_agent.h"
#include "sidecar/volume/manifest.h"

namespace modelswap::agent {

// What a poll job found: the active file's current size (fstat of the mapped inode) and the
// manifest. Written by the job, read by the loop once the worker is idle again (the worker's
// mutex orders the two).
struct ModelAgent::PollOutcome {
  std::shared_ptr<LoadedVersion> checked;  // the version whose layers' sizes were taken
  // Each mapped layer of `checked` (newest first) and its file's current size.
  std::vector<std::pair<std::shared_ptr<LoadedVersion>, Result<uint64_t>>> sizes;
  Result<Manifest> manifest = Fail(Code::kInternal, "poll did not run");
};

struct ModelAgent::LoadJob {
  Manifest manifest;
  // Loading an older version again because the active one's file was damaged.
  bool fallback = false;
};

struct ModelAgent::LoadOutcome {
  LoadJob job;
  Result<std::shared_ptr<LoadedVersion>> loaded = Fail(Code::kInternal, "load did not run");
};

// The layers of every version in `versions`, each once.
inline std::vector<std::shared_ptr<LoadedVersion>> AllLayers(
    const std::vector<std::shared_ptr<LoadedVersion>>& versions) {
  std::vector<std::shared_ptr<LoadedVersion>> out;
  for (const auto& v : versions) {
    if (!v) continue;
    for (auto& l : LayersOf(v)) {
      if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(std::move(l));
    }
  }
  return out;
}

}  // namespace modelswap::agent
