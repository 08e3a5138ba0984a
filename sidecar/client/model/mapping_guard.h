// The client's SIGBUS guard for version mappings: it lives in common/mapping_guard.h (channels
// and state regions use it too); this header keeps the name the model client has always used.
#pragma once

#include "common/mapping_guard.h"

namespace modelswap::client {

using ::modelswap::GuardAccess;
using ::modelswap::GuardedRange;

}  // namespace modelswap::client
