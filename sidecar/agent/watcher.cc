// The agent's watcher is common/dir_watcher.cc (see watcher.h); this file has no code left and
// stays only while sidecar/agent/CMakeLists.txt still names it.
#include "sidecar/agent/watcher.h"
