// The per-model manifest: <root>/<model>/manifest.json, the pointer to the active version.
//
// Blob storage gives no atomic rename (blobfuse copies then deletes) and caches attributes, so a
// reader may see a manifest half-copied, missing, or stale. The manifest therefore carries its
// own checksum and a strictly increasing generation: a reader trusts nothing else (never mtime),
// and ignores - keeps what it has and looks again later - a manifest that is missing, torn,
// failing its checksum, or older than the generation it already holds.
//
// JSON fields: model, version, file ("versions/<version>.msf", relative to the model directory),
// bytes, checksum (the .msf identity, "xxh3:<hex>"), generation (u64 >= 1), published_at
// (RFC 3339 UTC), optionally recipe ("versions/<version>.recipe": the version is chunked,
// sidecar/chunk/recipe.h; no whole .msf exists on the volume, "file" stays its logical name, so
// an agent that knows only whole files fails to open it and keeps its old version serving),
// optionally chain (the version is a delta, sidecar/msf/format.h: the layers BELOW it, newest
// first, down to and including its full base; each {"version", "file", "checksum", "bytes"} and
// "recipe" when that layer is chunked, with the same rules as the top-level fields; 1 to
// kMaxManifestChain entries, no version named twice nor the manifest's own; sidecar/volume/
// version_chain.h resolves it from the layers' headers), manifest_checksum = "xxh3:<hex>" of the
// compact JSON of all the other fields with keys sorted (nlohmann::json's own order), so any JSON
// library can recompute it. "recipe" and "chain" are in that JSON only when present, so
// manifests written before they existed keep their checksums.
//
// Generations never repeat. Blob storage can serve a stale or rolled-back copy of manifest.json
// (a cache, a restored snapshot, a copy someone put back): publishing "that manifest's generation
// + 1" would then hand out a generation the agents already hold, and they would ignore the new
// version for ever. So every publish first claims its generation with a file of its own,
//   <root>/<model>/generations/<generation, 20 digits>     (empty; created O_EXCL, never replaced)
// and takes generation = max(the manifest's generation, the highest claim) + 1, moving up while
// a claim of that number already exists. A claim is never rewritten, so no stale copy of it can
// lower the floor; the newest kKeptGenerationClaims stay, older ones are pruned. A manifest that
// is unreadable (torn, corrupt, over the 1 MiB cap, not a regular file, a symlink) is published
// over as well, with generation max(highest claim + 1, unix seconds): the seconds cover volumes
// whose earlier generations were published before claims existed.
// Agents that see a generation they know with other content say so (sidecar/agent/model_agent.h).
//
// Every file is opened beneath the root (Env::OpenBeneath: the manifest read, its temp file
// created, generation claims created): no symlink on the volume is followed to a file. The Env
// has no directory-relative calls for the rest, so creating generations/, listing it, pruning old
// claims and the rename of the temp over manifest.json use plain paths under <root>/<model>; a
// symlinked model directory is refused by the open of the temp file before anything is renamed.
//
// Thread safety: plain functions; concurrent publishers of one model are not supported (the
// operator runs one writer per model at a time); the O_EXCL claim still keeps two racing ones
// from sharing a generation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace modelswap {

// One layer below a delta version (Manifest::chain): what the agent maps under the version.
struct ManifestLayer {
  std::string version;
  std::string file;  // "versions/<version>.msf", its logical name in either layout
  std::string checksum;
  uint64_t bytes = 0;
  std::string recipe{};  // "" or "versions/<version>.recipe"

  bool operator==(const ManifestLayer&) const = default;
};

// The most layers a chain field holds: a chain has at most msf::kMaxChainLayers = 8 layers (the
// full base and 7 deltas, sidecar/msf/format.h), the version itself being the top one.
inline constexpr size_t kMaxManifestChain = 7;

struct Manifest {
  std::string model;
  std::string version;
  std::string file;  // relative to the model directory
  uint64_t bytes = 0;
  std::string checksum;
  uint64_t generation = 0;
  std::string published_at;
  std::string recipe{};  // "" (a whole .msf) or "versions/<version>.recipe" (a chunked version)
  // A delta version's lower layers, newest first, its full base last; empty for a full version.
  std::vector<ManifestLayer> chain{};
};

// "versions/<version>.recipe", the value of a chunked version's recipe field.
[[nodiscard]] std::string RecipeFieldFor(std::string_view version);

[[nodiscard]] std::string EncodeManifest(const Manifest& manifest);
// Parses and checks a manifest's text. kCorruption names what is wrong (not JSON, a missing or
// mistyped field, checksum mismatch, a file path that is not versions/<version>.msf, a chain entry
// by its index and version).
[[nodiscard]] Result<Manifest> DecodeManifest(std::string_view text);

// Reads <root>/<model>/manifest.json (at most 1 MiB, a regular file beneath root). kNotFound if
// absent; kCorruption if torn or bad; kInvalidArgument if too large or not a regular file;
// kPermissionDenied if a symlink is in the way; the model field must match `model`. With
// held_generation > 0, a manifest older than it is rejected with kFailedPrecondition (a stale cache
// or a rolled-back copy); an equal one is returned as is.
[[nodiscard]] Result<Manifest> ReadManifest(Env* env, std::string_view root, std::string_view model,
                                            uint64_t held_generation = 0);

// Verifies the version file in full, fills the chain field of a delta (ResolveChain,
// sidecar/volume/version_chain.h: every lower layer's header checked against its link), claims a
// generation (see above: max(manifest, highest claim)
// + 1; over an unreadable manifest max(highest claim + 1, unix seconds), with a warning), then
// atomically replaces the manifest with one pointing at the version.
[[nodiscard]] Result<Manifest> PublishVersion(Env* env, std::string_view root,
                                              std::string_view model, std::string_view version);

// The publishing steps after the version is checked: claims a generation (as above), sets
// m.generation and m.published_at, and atomically replaces the manifest with m. For callers that
// verified the version themselves (a chunked version: its recipe, not a whole .msf). m's model,
// version, file, bytes, checksum and recipe must pass DecodeManifest's checks (kInvalidArgument).
[[nodiscard]] Result<Manifest> PublishManifest(Env* env, std::string_view root, Manifest m);

// The highest generation ever claimed for the model (0: none), from generations/.
[[nodiscard]] Result<uint64_t> HighestClaimedGeneration(Env* env, std::string_view root,
                                                        std::string_view model);
inline constexpr int kKeptGenerationClaims = 8;

std::string FormatRfc3339(int64_t unix_nanos);

}  // namespace modelswap
