// The chain of a delta version on the volume: the version, the version it names as base, that
// one's base, ... down to a full version (sidecar/msf/format.h, "Delta files"). Every layer is
// a published version of the same model in either layout, <model>/versions/<v>.msf or
// <model>/versions/<v>.recipe (sidecar/chunk/recipe.h); a delta names its base by version and
// header checksum, so a base rewritten under the same name is a mismatch, not a silent swap.
//
// Only headers are read (the first 4096 bytes of each layer; for a chunked layer the chunks
// covering them, each checked against its SHA-256 by the chunk store, and the header against the
// recipe's checksum), never a layer's contents: publish verifies the top version in full, and
// every agent verifies every layer in full before serving it. Resolving is bounded: at most
// msf::kMaxChainLayers headers are read, and a version met twice is an error, never a loop.
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/manifest.h"

namespace modelswap {

struct ChainLayer {
  std::string version;
  std::string checksum;  // "xxh3:<hex>", the layer's header_checksum
  uint64_t bytes = 0;    // the .msf file's size
  std::string file;      // "versions/<version>.msf" (its logical name in either layout)
  std::string recipe;    // "" (a whole .msf) or "versions/<version>.recipe"
  bool delta = false;
  std::string base_version;   // deltas only
  std::string base_checksum;  // deltas only, "xxh3:<hex>"
  uint32_t chain_depth = 0;   // 0 for the full base, else deltas from the base up to this one
};

// The header of a published version of either layout, checked (msf::ParseHeader's checks) and
// naming `model` and `version` (else kCorruption). A chunked version's header comes from the
// chunks covering its first 4096 bytes, each verified by its hash, and must carry the recipe's
// checksum and size. kNotFound if the version exists in neither layout; a chunk of the header
// missing from the store is kCorruption (the version is damaged, not absent).
[[nodiscard]] Result<msf::Header> ReadVersionHeader(Env* env, std::string_view root,
                                                    std::string_view model,
                                                    std::string_view version);

// Follows base references from `version` down to its full base: NEWEST FIRST (layers[0] is the
// version, layers.back() the full base; a full version is a chain of one). Every link is
// checked: the base exists (kFailedPrecondition "delta v8 needs base v7 (xxh3:..), which is
// missing"), names the same model and carries the checksum the delta names (kCorruption naming
// both), chain_depth counts the deltas above the base; more than msf::kMaxChainLayers layers or
// a version met twice is kFailedPrecondition / kCorruption naming the chain.
[[nodiscard]] Result<std::vector<ChainLayer>> ResolveChain(Env* env, std::string_view root,
                                                           std::string_view model,
                                                           std::string_view version);

// The versions on the volume whose header names `version` as their base, sorted: what must be
// removed or compacted before `version` may go. A version file whose header is corrupt is
// skipped with a warning (it can serve nothing); any other read error is returned, so a caller
// deciding a removal never decides blind.
[[nodiscard]] Result<std::vector<std::string>> DeltasOn(Env* env, std::string_view root,
                                                        std::string_view model,
                                                        std::string_view version);

// The manifest's chain field for a resolved chain: its layers below the version.
[[nodiscard]] std::vector<ManifestLayer> ManifestChainOf(const std::vector<ChainLayer>& layers);

// One line for people (inspect): "v8 (delta, 4096 bytes) -> v7 (delta, ...) -> v6 (full, ...)".
[[nodiscard]] std::string FormatChain(const std::vector<ChainLayer>& layers);

}  // namespace modelswap
