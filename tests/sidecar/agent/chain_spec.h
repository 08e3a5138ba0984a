// A sequence of versions of one model as a test writes them and its readers check them: a full
// base, deltas on the previous version, and compactions of a delta's chain. Both the test (to
// write each delta's changes) and the reader processes (to know the one right value of every key
// in every version) derive everything from the spec string, so a value from any other version or
// layer is caught.
//
//   "c0,d1,d2,d3,c4=d3,d5"   c0: full; d1: delta on c0; d2 on d1; d3 on d2; c4: d3's chain
//                            compacted into a full version; d5: delta on c4.
//
// Keys are "0".."keys-1" and the base holds them all. Delta number i (its index in the spec)
// upserts the keys with k % 4 == i % 4 and deletes those with k % 7 == i % 7 (not upserted), so
// later deltas re-insert keys earlier ones deleted and overwrite their values. Every value starts
// with SyntheticPrefix(model, <version that wrote it>, k).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sidecar/writer/synthetic_data.h"

namespace modelswap::testing {

struct ChainSpecEntry {
  std::string version;
  enum class Kind { kFull, kDelta, kCompact } kind = Kind::kFull;
  int source = -1;  // kCompact: the index of the version whose chain it folds
};

inline std::vector<ChainSpecEntry> ParseChainSpec(const std::string& spec) {
  std::vector<ChainSpecEntry> out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? comma : comma - start);
    ChainSpecEntry e;
    size_t eq = item.find('=');
    e.version = item.substr(0, eq);
    if (out.empty()) {
      e.kind = ChainSpecEntry::Kind::kFull;
    } else if (eq != std::string::npos) {
      e.kind = ChainSpecEntry::Kind::kCompact;
      for (size_t i = 0; i < out.size(); ++i) {
        if (out[i].version == item.substr(eq + 1)) e.source = static_cast<int>(i);
      }
    } else {
      e.kind = ChainSpecEntry::Kind::kDelta;
    }
    out.push_back(e);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

inline bool SpecUpserts(size_t i, uint64_t k) {
  return k % 4 == i % 4;
}
inline bool SpecDeletes(size_t i, uint64_t k) {
  return k % 7 == i % 7 && !SpecUpserts(i, k);
}

// The prefix the value of key k must start with in version `index`, or nullopt if k is absent.
inline std::optional<std::string> SpecExpected(const std::vector<ChainSpecEntry>& spec,
                                               size_t index, const std::string& model, uint64_t k) {
  const ChainSpecEntry& e = spec[index];
  switch (e.kind) {
    case ChainSpecEntry::Kind::kFull:
      return SyntheticPrefix(model, e.version, k);
    case ChainSpecEntry::Kind::kCompact:
      return SpecExpected(spec, static_cast<size_t>(e.source), model, k);
    case ChainSpecEntry::Kind::kDelta:
      if (SpecUpserts(index, k)) return SyntheticPrefix(model, e.version, k);
      if (SpecDeletes(index, k)) return std::nullopt;
      return SpecExpected(spec, index - 1, model, k);
  }
  return std::nullopt;
}

// The layers a handle on version `index` reads: 1 + the deltas below it down to a full version.
inline size_t SpecLayers(const std::vector<ChainSpecEntry>& spec, size_t index) {
  return spec[index].kind == ChainSpecEntry::Kind::kDelta ? 1 + SpecLayers(spec, index - 1) : 1;
}

// The TSV of version `index`: all keys for the base, the changes for a delta, none for a
// compaction. Values are the prefix and some filler (TSV-safe).
inline std::string SpecTsv(const std::vector<ChainSpecEntry>& spec, size_t index,
                           const std::string& model, uint64_t keys) {
  std::string out;
  const ChainSpecEntry& e = spec[index];
  for (uint64_t k = 0; k < keys; ++k) {
    bool full = e.kind == ChainSpecEntry::Kind::kFull;
    if (full || (e.kind == ChainSpecEntry::Kind::kDelta && SpecUpserts(index, k))) {
      out += std::to_string(k) + "\t" + SyntheticPrefix(model, e.version, k) +
             std::string(24 + k % 40, 'x') + "\n";
    } else if (e.kind == ChainSpecEntry::Kind::kDelta && SpecDeletes(index, k)) {
      out += std::to_string(k) + "\t\\N\n";
    }
  }
  return out;
}

}  // namespace modelswap::testing
