// Publishing and removing a version whatever its layout: a whole .msf on the volume, or a chunked
// version (a recipe naming chunks in the store, sidecar/writer/chunked_upload.h).
//
// A chunked version is checked before it is published by reading its recipe (its own checksum,
// its names) and finding every chunk it names in the store: reading every chunk back would cost
// the whole file's bytes from blob storage, and every agent verifies each chunk's hash and the
// assembled file in full before any app sees it (sidecar/cache/assembler.h).
//
// Thread safety: plain functions.
#pragma once

#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/volume/manifest.h"

namespace modelswap {

// PublishVersion for a whole file; for a chunked version, CheckChunkedVersion then
// PublishManifest with the recipe field set. Either way a delta's manifest gets its chain field
// from ResolveChain (sidecar/volume/version_chain.h): each lower layer's header is read and
// checked against the link naming it, the layers are not verified in full (a base may be as big
// as the model; agents verify every layer before serving). kNotFound if the version exists in
// neither layout; a missing or mismatched base is an error naming it.
[[nodiscard]] Result<Manifest> PublishAnyVersion(Env* env, const std::string& root,
                                                 const std::string& model,
                                                 const std::string& version);

// Removes the version's .msf and recipe (whichever exist), refusing while the manifest names it
// or cannot be read (RemoveVersionFile), and while a delta on the volume names it as its base
// (DeltasOn; kFailedPrecondition "v7 is the base of delta v8: remove or compact v8 first"). Its
// chunks stay until a garbage collection finds no recipe naming them (sidecar/chunk/chunk_gc.h).
// False if neither file existed.
[[nodiscard]] Result<bool> RemoveAnyVersion(Env* env, const std::string& root,
                                            const std::string& model, const std::string& version);

}  // namespace modelswap
