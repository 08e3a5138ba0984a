// The status the reconciler computes for one live version: its phase and the Written, Active and
// Loaded conditions, status.progress of a running write, and the Event reason of a phase change.
// Internal to the reconciler (reconciler.h has the rules). Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "operator/controller/reconciler.h"
#include "operator/controller/version_view.h"

namespace modelswap::op {

// Sets v.next's phase and its Written, Active and Loaded conditions. `is_active`: v is the
// model's active version; `scheduled_write`: its write task starts now.
void SetPhaseAndConditions(VersionView& v, bool is_active, bool scheduled_write,
                           const ModelLoad& load, int64_t now);

// status.progress of a version whose write task runs and reports progress; cleared otherwise. A
// change is written at most every `interval_ns` (a multi-GB write would otherwise cost a status
// write per poll); *hold_ns says how long a withheld change waits, so a requeue writes it then.
void SetProgress(VersionView& v, int64_t interval_ns, int64_t now, int64_t* hold_ns);

// The reason of the Event emitted when a version enters phase `p`.
std::string EventReason(Phase p);

}  // namespace modelswap::op
