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
// (RFC 3339 UTC), manifest_checksum = "xxh3:<hex>" of the compact JSON of all the other fields
// with keys sorted (nlohmann::json's own order), so any JSON library can recompute it.
//
// Thread safety: plain functions; concurrent publishers of one model are not supported (the
// operator runs one writer per model at a time).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"

namespace modelswap {

struct Manifest {
  std::string model;
  std::string version;
  std::string file;  // relative to the model directory
  uint64_t bytes = 0;
  std::string checksum;
  uint64_t generation = 0;
  std::string published_at;
};

[[nodiscard]] std::string EncodeManifest(const Manifest& manifest);
// Parses and checks a manifest's text. kCorruption names what is wrong (not JSON, a missing or
// mistyped field, checksum mismatch, a file path that is not versions/<version>.msf).
[[nodiscard]] Result<Manifest> DecodeManifest(std::string_view text);

// Reads <root>/<model>/manifest.json. kNotFound if absent; kCorruption if torn or bad; the model
// field must match `model`. With held_generation > 0, a manifest older than it is rejected with
// kFailedPrecondition (a stale cache or a rolled-back copy); an equal one is returned as is.
[[nodiscard]] Result<Manifest> ReadManifest(Env* env, std::string_view root, std::string_view model,
                                            uint64_t held_generation = 0);

// Verifies the version file in full, then atomically replaces the manifest with one pointing at
// it, with generation = previous + 1 (1 for the first). If the current manifest is unreadable
// (torn by a crashed copy), the new generation is max(1, unix seconds) so that it still exceeds
// anything agents hold, and a warning is logged.
[[nodiscard]] Result<Manifest> PublishVersion(Env* env, std::string_view root,
                                              std::string_view model, std::string_view version);

std::string FormatRfc3339(int64_t unix_nanos);

}  // namespace modelswap
