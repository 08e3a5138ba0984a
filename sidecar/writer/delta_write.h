// Planning a delta write (`write --delta-on V`): which chain the new version joins, what its
// header names as base, and whether it is written as a delta or compacted into a full version.
//
// A delta W on V names V by version and header checksum (its identity, msf/format.h) and has
// chain_depth = V's + 1 (1 on a full V). V may be whole or chunked; its chain is resolved on the
// volume (sidecar/volume/version_chain.h), so a missing or replaced base is an error naming it
// before anything is built. The chain may hold at most max_chain deltas (1..7, default 4):
// deeper is refused with a message saying to compact, or with auto_compact compacted. With
// auto_compact the delta is also compacted when the deltas' bytes, the new one included, would
// pass compact_ratio of the full base's bytes; the new delta's size is known only once built, so
// the writer builds it in scratch first and decides then (sidecar/writer/writer.cc).
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/msf/builder.h"
#include "sidecar/volume/version_chain.h"
#include "sidecar/writer/build_steps.h"
#include "sidecar/writer/writer.h"

namespace modelswap {

struct DeltaPlan {
  std::vector<ChainLayer> base_chain;  // delta_on's chain, newest first, its full base last
  msf::DeltaBase delta;                // what a delta written on it names
  uint64_t deltas_bytes = 0;           // bytes of base_chain's deltas
  uint64_t base_bytes = 0;             // bytes of base_chain's full base
  bool compact = false;                // write a full version (asked, or over max_chain)
  bool check_ratio = false;            // auto_compact: compact if the new delta passes the ratio
};

// Checks the request's delta fields and resolves delta_on's chain. Errors: kInvalidArgument for
// a bad combination; ResolveChain's for a missing or mismatched base; kFailedPrecondition
// "chain of ranker v8 would hold 5 deltas (limit 4): compact it (write --compact)".
[[nodiscard]] Result<DeltaPlan> PlanDelta(Env* env, const WriteRequest& req);

// auto_compact's second test: whether the chain's deltas plus one of new_delta_bytes pass
// compact_ratio of the full base's bytes.
bool PassesCompactRatio(const DeltaPlan& plan, uint64_t new_delta_bytes, double compact_ratio);

// Builds the version req asks for on plan into fd (an empty file): the delta, or the compacted
// full version (notes->compacted), whichever the plan and, with auto_compact, the new delta's size
// call for. Scratch files go to the request's scratch directory and are removed.
[[nodiscard]] Result<msf::BuildResult> BuildDeltaVersion(Env* env, const WriteRequest& req,
                                                         const DeltaPlan& plan, int fd,
                                                         writer_steps::BuildNotes* notes);

// The chain of the written version, newest first (WriteResult::chain).
std::vector<ChainEntry> ChainOfDelta(const DeltaPlan& plan, const std::string& version,
                                     uint64_t bytes);

}  // namespace modelswap
