// Which one task a model may run now (reconciler.h's "one task per model at a time"): rollback
// publishes, the publish of the picked activate request, the next write, retention removals; and
// which version is the active one. Internal to the reconciler. Thread safety: pure functions.
#pragma once

#include <optional>
#include <vector>

#include "operator/controller/reconciler.h"
#include "operator/controller/version_view.h"

namespace modelswap::op {

// Index of the active version: the written, present version with the highest manifest
// generation (rollbacks republish under a new, higher generation). -1: none.
int FindActive(const std::vector<VersionView>& views);

// Picks the one task the model may run now, if any. `request`: PickRequest's choice (or -1,
// activate_request.h); *scheduled_write: the index of the version whose write it starts.
std::optional<Action> Schedule(std::vector<VersionView>& views, int active, int request,
                               const ModelLoad& load, int* scheduled_write);

}  // namespace modelswap::op
