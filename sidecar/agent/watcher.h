// Waking the model loop when a manifest may have changed: the agent's watcher is
// common/dir_watcher.h's DirWatcher on the model directory, for the file manifest.json.
//
// Over blobfuse no event ever comes for another node's publish, so the model loop never relies on
// one: it waits at most its poll interval and then re-reads the manifest after forcing a fresh
// stat (Env::RevalidateAttributes), so FUSE attribute caching cannot delay a swap
// (docs/design.md, "Loading"). `agent --no-inotify` polls only.
#pragma once

#include "common/dir_watcher.h"

namespace modelswap::agent {

using Watcher = DirWatcher;

}  // namespace modelswap::agent
