// Compaction: folding a chain of layers (a full base and deltas on it, sidecar/msf/chain.h) into
// one FULL version (`write --compact`, `--auto-compact`).
//
// The fold keeps the full base's layout, as `write --base` does (sidecar/writer/base_layout.h):
// first the base's entries in the base's DATA order, each with the value of the newest layer
// that has the key and dropped where the newest answer is a tombstone; then the keys the base
// lacks, layer by layer from the newest, each once (the newest value). The base's hash seed and
// index capacity are kept too, so a compacted chunked version shares every chunk the deltas did
// not change with its base. This costs nothing over a plain fold: one pass over the base's DATA,
// plus for each of its keys one index probe per delta (a miss reads the probed slots' cache
// line; deltas are small and stay cached), plus one pass over each delta's entries.
//
// Layers are read through read-only mappings: a whole .msf on the volume in place, a chunked one
// assembled into node-local scratch first (BaseVersion, every chunk's hash checked). The deltas
// are verified in full on opening and the chain validated (msf::ValidateChain) before anything
// is folded. The full base, nearly all the bytes, is read once, not twice: its header is checked
// on opening, and the fold checks its section checksums as it goes (DATA streamed behind the
// walk, INDEX at the end), failing the compaction (nothing renamed or uploaded) on a mismatch;
// reading DATA bounds-checks every entry. What this skips of a full verification is the proof
// that the base's INDEX indexes exactly its DATA: the fold reads the base's index only to ask
// whether a delta's key is in the base, the index is checksummed, and every agent proved it when
// it loaded the base. Verifying first made compaction read the base twice (about 0.6x of the
// plain writer's speed; measured in sidecar/writer/README.md).
//
// Thread safety: plain functions.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/msf/builder.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/version_chain.h"
#include "sidecar/writer/base_layout.h"

namespace modelswap {

// The full base's file bytes (the mapping its Reader reads), for FoldChain to read ahead of its
// walk and, unless verified, to check its section checksums.
struct BaseFile {
  std::span<const std::byte> bytes;
  bool verified = true;
};

// The layers of a version's chain, opened and validated: layers()[0] the version itself,
// layers().back() its full base.
class OpenedChain {
 public:
  // chain: ResolveChain's answer (newest first). Chunked layers go to scratch_dir.
  [[nodiscard]] static Result<OpenedChain> Open(Env* env, const std::string& root,
                                                const std::string& model,
                                                const std::vector<ChainLayer>& chain,
                                                const std::string& scratch_dir);
  std::span<const msf::Reader* const> layers() const { return readers_; }
  // The full base's file, for FoldChain: opened with kHeader, its contents checked by the fold.
  BaseFile base_file() const { return BaseFile{opened_.back()->bytes(), false}; }

 private:
  std::vector<std::unique_ptr<BaseVersion>> opened_;
  std::vector<const msf::Reader*> readers_;
};

struct FoldStats {
  uint64_t kept = 0;      // base entries written (their value possibly from a delta)
  uint64_t deleted = 0;   // base entries a tombstone removed
  uint64_t appended = 0;  // keys the base lacks, from the deltas
};

// Writes the live entries of `layers` (newest first, full base last; not validated here: the
// caller validated the part that came from the volume) into fd, an empty file, as a full
// version in the base's layout (see above). options gives the model, version and creation time;
// its seed and capacity are taken from the base, its delta cleared. base_file: the base's bytes
// (read ahead of the walk); unless verified, its section checksums are checked during the fold
// (kCorruption naming the section); empty: neither. on_progress gets the builder's DATA bytes
// now and then.
[[nodiscard]] Result<msf::BuildResult> FoldChain(
    Env* env, std::span<const msf::Reader* const> layers, int fd, msf::BuildOptions options,
    FoldStats* stats, const BaseFile& base_file = {},
    const std::function<void(uint64_t)>& on_progress = {});

}  // namespace modelswap
