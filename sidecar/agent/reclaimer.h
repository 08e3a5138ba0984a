// Reclaiming superseded versions: when the agent may unmap one, and how it lets go of it.
//
// A retired version is dropped once no live reader slot holds its generation (apps moved on,
// or died and stopped their heartbeat), or once it has been retired for the grace period
// whatever the slots say (an app that holds a handle for ever must not pin memory for ever; it
// keeps its own mapping and keeps reading correctly, only no longer from pages the agent keeps
// warm). A chain's layers are dropped one by one, each once no retained version uses it. Dropping
// unmaps the agent's mapping, asks the kernel to drop the file's page-cache pages
// (POSIX_FADV_DONTNEED: pages still mapped by an app are kept), and deletes a staged copy. A
// chunked version's file is the node cache's, shared with other pods: dropping it only unmaps it
// and releases its hold, leaving the file to cache eviction.
//
// Thread safety: plain functions; the caller owns the versions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/env.h"
#include "sidecar/agent/loader.h"
#include "sidecar/client/model/control_block_access.h"

namespace modelswap::agent {

// Why `v` may be dropped now ("no reader holds it", "grace period over"), or "" to keep it.
std::string ReclaimReason(const LoadedVersion& v, const std::vector<ctl::SlotView>& live,
                          int64_t now_ns, int64_t grace_ns);

// Number of live slots that hold `generation`.
int HoldersOf(uint64_t generation, const std::vector<ctl::SlotView>& live);

// Unmaps one layer v and drops its cached pages. Files in `keep_paths` (mapped by a retained
// version: the same file republished under a new generation, i.e. a rollback, or a layer a
// retained chain uses) are left alone. The caller drops a layer only when no retained version
// uses it (model_agent.cc).
void DropVersion(Env* env, LoadedVersion& v, const std::vector<std::string>& keep_paths);

}  // namespace modelswap::agent
