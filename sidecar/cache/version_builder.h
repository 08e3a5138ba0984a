// Building one assembled version under its temp name: the file sized sparse with ftruncate,
// ranges copied from the base by copy_threads threads while fetch_threads threads read the other
// data chunks through the chunk cache and write them in place, the boot mark (durability.h; an
// fsync where it cannot be set); then, a separate call, the full .msf verification against the
// recipe. The caller (assembler.h) owns the locks, retries and publishing.
//
// Thread safety: one BuildVersionFile call per temp file; it runs its own worker threads.
#pragma once

#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/assembler.h"
#include "sidecar/cache/assembly_plan.h"

namespace modelswap::cache {

// Creates `temp_path` (it must not exist) and fills it; the file is left 0444 with its access
// history set, to be checked with VerifyAssembled. On error the temp may remain: the caller
// removes it. `base` may be null.
[[nodiscard]] Status BuildVersionFile(Env* env, const CacheOptions& options,
                                      const chunk::Recipe& recipe, const ChunkSourceFn& fetch,
                                      const ProgressFn& progress, BaseVersion* base,
                                      const std::string& temp_path, AssembleStats* stats);

// Full .msf check of the file at path against the recipe (kCorruption naming what differs).
[[nodiscard]] Status VerifyAssembled(Env* env, const std::string& path,
                                     const chunk::Recipe& recipe);

}  // namespace modelswap::cache
