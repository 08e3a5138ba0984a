// Turning a chunked version (a manifest with a recipe) into a verified local file to map: its
// recipe read from the volume and checked against the manifest, then assembled in the node cache
// (sidecar/cache/assembler.h) from the previous assembled version and chunks fetched from the
// volume's chunk store at most once per node. The loader (loader.h) maps the result and runs the
// same header, prefault and verification steps as for a whole file.
//
// Every error names the version (and what the cache or the chunk store named: a chunk's hex, the
// recipe's path), so a rejection in /v1/status says which version failed and why.
//
// Thread safety: a plain function, run on the model's VolumeWorker.
#pragma once

#include <functional>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/assembler.h"
#include "sidecar/cache/cache_options.h"
#include "sidecar/volume/manifest.h"

namespace modelswap::agent {

// Checks that the recipe describes exactly the version the manifest published: model, version,
// size and .msf checksum (a recipe left from another write of the same name must not load).
[[nodiscard]] Status CheckRecipeMatchesManifest(const chunk::Recipe& recipe, const Manifest& m);

// Reads <root>/<model>/versions/<version>.recipe, checks it, and assembles it in the cache at
// options.dir. `step` (may be empty) is told each phase, for /v1/status while it runs.
[[nodiscard]] Result<cache::Assembled> AssembleChunked(
    Env* env, const std::string& root, const Manifest& m, const cache::CacheOptions& options,
    const std::function<void(std::string)>& step);

}  // namespace modelswap::agent
