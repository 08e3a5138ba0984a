// Writing one version of a model to the shared volume (`modelswap-sidecar write`).
//
// The file is built in <root>/<model>/versions/.tmp-<version>.msf-<pid>-<ns>, reserved with
// fallocate (skipped where the filesystem refuses, as blobfuse does), written in 2 MiB-aligned
// chunks, fsynced, renamed to <version>.msf without replacing anything, and the directory
// fsynced. A crash at any point leaves at most a .tmp- file, which agents never read and the next
// write of the same version removes. An existing version is never overwritten (kAlreadyExists,
// or with reuse_existing, reported as is when it verifies). Files on the volume, the scratch file
// and a source given inside the root alike, are opened beneath the root (Env::OpenBeneath): a
// symlink there is refused, never followed.
//
// A chunked version (Layout::kChunked) is built the same way but in a node-local scratch file
// (scratch_dir), then stored as content-addressed chunks plus a recipe
// (sidecar/writer/chunked_upload.h): only chunks the volume lacks are uploaded, and no whole
// .msf is written to the volume.
//
// A delta version (delta_on) or a compaction of a chain into a full version (compact,
// auto_compact) is planned and built by sidecar/writer/delta_write.h, then stored by the same
// two paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunker.h"
#include "sidecar/writer/chunked_upload.h"

namespace modelswap {

struct GenerateSource {
  uint64_t bytes = 0;  // about this many bytes of DATA
  uint64_t seed = 0;
  uint32_t value_bytes = 1024;
};
struct TsvSource {
  std::string path;
};
struct MsfSource {
  std::string path;
};
// Only for a compaction (WriteRequest::compact): the chain is folded as it is.
struct NoChanges {};
using WriteSource = std::variant<GenerateSource, TsvSource, MsfSource, NoChanges>;

struct WriteRequest {
  std::string root;
  std::string model;
  std::string version;
  WriteSource source;
  bool progress = false;  // progress lines on stderr
  // If the version file already exists and verifies in full (checksums, model and version),
  // report it as written instead of failing with kAlreadyExists. This makes a retried writer Job
  // idempotent: a pod killed after its rename but before the operator read its result runs again
  // and reports the same file. A corrupt existing file is still an error, never overwritten.
  bool reuse_existing = false;

  enum class Layout { kWholeFile, kChunked };
  Layout layout = Layout::kWholeFile;
  // Chunked: where the whole .msf is built before it is cut ("" = $TMPDIR, else /tmp). Needs
  // room for one version; the file is removed when the write ends.
  // With a base, the new content is built here first as well.
  std::string scratch_dir = {};
  chunk::ChunkerParams chunking = {};
  int zstd_level = 3;
  int threads = 2;
  // Lay the version out like this earlier version of the model (sidecar/writer/base_layout.h),
  // so that unchanged rows make unchanged chunks. "" = no base.
  std::string base_version = {};
  // Chunked, on a chunked base: store a chunk the volume lacks as a delta chunk against the
  // base's chunk at its place when that saves at least half its bytes (chunked_upload.h).
  // false = `write --no-chunk-deltas`.
  bool chunk_deltas = true;
  // Chunked: how long to wait while a chunk garbage collection holds the store.
  int64_t gc_wait_ns = int64_t{15} * 60 * 1'000'000'000;

  // Delta versions (sidecar/writer/delta_write.h). With delta_on, the version is a delta on that
  // published version of the model (itself full or a delta): the source must be a TsvSource of
  // changes (`key<TAB>\N` deletes a key, sidecar/writer/tsv.h), and the new chain may hold at
  // most max_chain deltas. compact: write a FULL version instead, folding delta_on's chain (and
  // the TSV's changes, if any: source TsvSource or NoChanges) in the full base's layout.
  // auto_compact: compact instead of writing a delta when the chain would exceed max_chain or the
  // deltas' bytes, the new one included, would pass compact_ratio of the full base's bytes.
  std::string delta_on = {};
  bool compact = false;
  bool auto_compact = false;
  uint32_t max_chain = 4;  // 1..msf::kMaxChainDeltas
  double compact_ratio = 0.5;
};

// One layer of the written version's chain, newest first.
struct ChainEntry {
  std::string version;
  uint64_t bytes = 0;
};

struct WriteResult {
  std::string path;
  uint64_t bytes = 0;
  uint64_t entry_count = 0;
  std::string checksum;
  double seconds = 0;
  bool reused = false;  // the file existed already (reuse_existing)
  bool chunked = false;
  ChunkedUploadResult chunks;  // chunked: what was uploaded and reused (zero when reused)
  // A delta: its base and chain_depth (deltas from the full base up to it); 0 = a full version.
  std::string delta_base;
  uint32_t chain_depth = 0;
  uint64_t tombstones = 0;
  bool compacted = false;  // a full version folded from a chain (compact or auto_compact)
  // The layers a reader needs, newest first: this version, then (for a delta) its bases down to
  // the full one. A full version is a chain of itself.
  std::vector<ChainEntry> chain;
};

[[nodiscard]] Result<WriteResult> WriteVersion(Env* env, const WriteRequest& request);

}  // namespace modelswap
