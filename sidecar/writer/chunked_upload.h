// Storing a built .msf as a chunked version: its chunks in the volume's content-addressed store
// (sidecar/chunk/chunk_store.h) and its recipe at <root>/<model>/versions/<version>.recipe.
//
// The writer builds the whole file in a node-local scratch file first (the .msf format puts the
// index and the header last, so no chunk is final until the build is), then cuts it with FastCDC
// over a read-only mapping, and uploads only the chunks the store lacks: a version that differs
// from the last one in a few places costs the volume those few chunks, not the whole file.
//
// Order, chosen so a crash anywhere leaves nothing that is used half-written:
//   1. a writer-in-flight marker (sidecar/chunk/writer_marker.h), so a concurrent GC cannot
//      remove a chunk this write found present and decided not to upload;
//   2. every missing chunk, each durable before the recipe exists (ChunkStore::Put fsyncs);
//   3. the recipe, through a temp name, fsynced, renamed without replacing, the directory
//      fsynced: the recipe appears whole and only once every chunk it names is stored;
//   4. the marker removed (a crashed writer's marker ages out after the GC's grace period).
// Compression runs on `threads` workers while the calling thread cuts and hashes; chunk bytes
// are read from the mapping in place (no copy), and at most `threads * 2` chunks are in flight.
//
// Delta chunks (sidecar/chunk/chunk_store.h, DeltaChunkRel). When the version is laid out on a
// chunked base version (`write --base V`, base_layout.h), a chunk the store lacks is usually V's
// chunk at the same offsets with a few bytes changed (an 8-byte index slot, a few rows): stored
// whole it costs its full compressed size, compressed against V's chunk it costs tens of bytes.
// So for each such chunk the writer picks a base: V's recipe entry covering most of the new
// chunk's bytes (the base layout keeps unchanged entries at their offsets), none for a hole, and
// for a delta entry its own base (a base is always stored whole, so reading a delta needs one
// other chunk, never a chain). A delta that does not save at least half of the chunk's bytes
// (PutDelta's max_stored = length / 2) is not worth the extra read: the chunk is stored whole.
// A version written without a base never has deltas, so its recipe stays format version 1.
//
// Thread safety: a plain function; internally multi-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunker.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap {

struct ChunkedUploadOptions {
  chunk::ChunkerParams params;
  int zstd_level = 3;
  int threads = 2;
  // How long to keep retrying while a garbage collection holds the store (its marker is fresh).
  int64_t gc_wait_ns = int64_t{15} * 60 * 1'000'000'000;
  // Called now and then with the bytes cut so far (progress lines, the writer's progress).
  std::function<void(uint64_t cut_bytes)> on_progress;
  // The version this one was laid out on (`write --base`, "" = none). When it is chunked, chunks
  // the store lacks may be stored as delta chunks against its chunks (see above); a whole-file
  // base gives no deltas.
  std::string base_version = {};
  // `write --no-chunk-deltas`: store every new chunk whole even on a chunked base.
  bool chunk_deltas = true;
};

struct ChunkedUploadResult {
  std::string recipe_path;
  uint64_t chunks_total = 0;      // every chunk of the recipe, holes included
  uint64_t chunks_new = 0;        // uploaded by this write
  uint64_t holes = 0;             // zero runs, never stored
  uint64_t bytes_new = 0;         // file bytes in the uploaded chunks
  uint64_t bytes_reused = 0;      // file bytes in chunks the store already had
  uint64_t bytes_holes = 0;       // file bytes in holes
  uint64_t stored_bytes_new = 0;  // compressed bytes uploaded (whole and delta chunk files)
  // Of the uploaded chunks, those stored as delta chunks, their file bytes, and their stored
  // bytes (part of stored_bytes_new).
  uint64_t chunks_delta = 0;
  uint64_t bytes_delta = 0;
  uint64_t stored_bytes_delta = 0;
};

// Uploads the .msf at msf_path (node-local, complete) as <model>/<version> beneath root.
// msf_checksum is its header checksum (the recipe commits to it). kAlreadyExists if the recipe
// exists; kUnavailable if a GC held the store for longer than gc_wait_ns.
[[nodiscard]] Result<ChunkedUploadResult> UploadChunked(
    Env* env, const std::string& root, const std::string& model, const std::string& version,
    const std::string& msf_path, uint64_t msf_checksum, const ChunkedUploadOptions& options);

// Reads the recipe of <model>/<version> and checks that it names that model and version and that
// every chunk it names is in the store, a delta entry's base included (not that each is intact:
// agents verify every chunk's hash before use). How a retried write, and publish, check a chunked
// version without reading all of it back from blob storage.
[[nodiscard]] Result<chunk::Recipe> CheckChunkedVersion(Env* env, const std::string& root,
                                                        const std::string& model,
                                                        const std::string& version);

}  // namespace modelswap
