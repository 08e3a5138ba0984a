// Garbage collection of the chunk store: removes chunks that no recipe on the volume names.
//
// Rules, in order (each is a way live data could otherwise be lost):
//   1. GC creates its own marker (writer_marker.h), then looks for writer markers: while one
//      younger than the grace period exists it stops, removing nothing (a writer may be about to
//      publish a recipe naming chunks that no recipe names yet, or that it found stored already).
//   2. Every recipe matching <root>/*/versions/*.recipe is read and decoded (ReadRecipeBeneath).
//      A recipe that cannot be read or decoded STOPS the GC with an error naming it: its chunks
//      are unknown, and removing "unreferenced" chunks blind could remove live ones. A recipe
//      that vanished between the listing and the read (a removed version) is skipped.
//   3. A chunk file named by no recipe is removed only if its mtime is older than the grace
//      period (a chunk just put by a writer whose marker aged out, or one being copied, is
//      left). A recipe's whole entry names <H>; its delta entry names the delta file <H>.<B>
//      and the base <B> (stored whole), and not <H>: a whole <H> beside it is garbage unless
//      some recipe's whole entry names it. Delta files are counted with the chunks (and apart
//      in deltas_*).
//   4. Put's temp files (.chunks/<2 hex>/.tmp-*) older than the grace period are removed (a
//      crashed writer's leftovers).
// dry_run reports what would be removed and removes nothing (nor creates a marker).
//
// Thread safety: one GC per volume at a time is the intent; two racing ones only duplicate work
// (removing an already removed chunk is skipped).
#pragma once

#include <cstdint>
#include <string>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::chunk {

struct GcOptions {
  // Age (by mtime, against Env::NowUnixNanos) below which chunks, temps and markers count as in
  // use. Generous by default: the clocks of the volume's server and of this node may disagree.
  int64_t grace_ns = int64_t{6} * 3600 * 1'000'000'000;
  bool dry_run = false;
};

struct GcResult {
  uint64_t recipes = 0;            // recipes read
  uint64_t chunks_seen = 0;        // chunk files listed, whole and delta
  uint64_t deltas_seen = 0;        // of those, delta files
  uint64_t chunks_referenced = 0;  // of those, named by some recipe
  uint64_t chunks_young = 0;       // unreferenced but younger than the grace period: kept
  uint64_t chunks_removed = 0;     // (would be, with dry_run) removed
  uint64_t deltas_removed = 0;     // of those, delta files
  uint64_t bytes_removed = 0;      // their stored bytes
  uint64_t temps_removed = 0;
  std::string stopped_by_writer;  // non-empty: the fresh writer marker that stopped the GC
};

// Collects garbage on the volume at root (see above). Errors name the recipe or file that
// stopped it; chunks removed before an I/O error stay removed (each was garbage).
[[nodiscard]] Result<GcResult> CollectGarbage(Env* env, const std::string& root,
                                              const GcOptions& options);

}  // namespace modelswap::chunk
