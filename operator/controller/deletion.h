// Deleting a version that holds the finalizer: cancel its own writer, remove its file (or keep it
// while the manifest or a kept delta needs it), release the finalizer once nothing is left to do.
// Internal to the reconciler (reconciler.h has the rules). Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "operator/controller/reconciler.h"
#include "operator/controller/version_view.h"

namespace modelswap::op {

// A deleted version (with our finalizer): cancel its own writer, remove its file, release the
// finalizer once nothing is left to do. Never waits for other versions' tasks. While it waits,
// the condition Deleting says for what.
void Deletion(VersionView& v, bool is_active, int64_t now, std::vector<Action>* out);

}  // namespace modelswap::op
