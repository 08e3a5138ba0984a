// A version as a chain of .msf layers: one full base plus up to kMaxChainDeltas deltas
// (format.h). Lookups read the newest layer first and stop at the first value or tombstone.
//
// Layers are opened Readers (each verified as its caller requires, usually kFull); a chain is
// passed as a span of pointers, NEWEST FIRST: layers[0] is the version itself, layers.back() the
// full base. A single full version is a chain of one. The functions keep no state and allocate
// nothing on the lookup path; they are safe from any number of threads, like Reader.
//
// A lookup may also be given one LayerFilter per layer (msf/layer_filter.h, built by the reader
// when it opens the layer): a layer whose filter says no is skipped without touching its index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "common/status.h"
#include "sidecar/msf/layer_filter.h"
#include "sidecar/msf/reader.h"

namespace modelswap::msf {

// Checks that `layers` form one chain: 1..kMaxChainLayers non-null layers; layers.back() is not
// a delta; every other layer is a delta whose base_version/base_checksum equal the next layer's
// version/header_checksum; the chain_depth of layer i equals the number of deltas from the base up
// to it (layers.size() - 1 - i); one model throughout. Every error is kFailedPrecondition (each
// file may be sound; they do not fit together), starts with "msf: " and names the layer and the
// mismatch, e.g. "msf: delta v8 names base v7 checksum xxh3:.., but the layer below is v7
// xxh3:..".
[[nodiscard]] Status ValidateChain(std::span<const Reader* const> layers);

// The value of key in the chain: newest layer first, stopping at the first value (returned) or
// tombstone (nullopt). No allocation: one index probe per layer that does not hold the key.
std::optional<std::span<const std::byte>> ChainFind(std::span<const Reader* const> layers,
                                                    std::span<const std::byte> key);
std::optional<std::string_view> ChainFind(std::span<const Reader* const> layers,
                                          std::string_view key);
// The same, skipping layer i when filters[i] is set and says no (a layer it skips cannot hold
// the key, so the answer is the unfiltered one). `filters` runs parallel to `layers`; nullptr
// for a layer without a filter (the base usually has none: a full version holds most keys, so
// a filter would pass nearly every lookup). Empty, or not of layers.size(): no filters at all.
std::optional<std::span<const std::byte>> ChainFind(std::span<const Reader* const> layers,
                                                    std::span<const LayerFilter* const> filters,
                                                    std::span<const std::byte> key);
std::optional<std::string_view> ChainFind(std::span<const Reader* const> layers,
                                          std::span<const LayerFilter* const> filters,
                                          std::string_view key);

// Calls fn(key, value) for every live key of the chain once (the newest value wins, tombstoned
// keys are skipped), layer by layer from the newest, each in DATA order; used by compaction. fn
// returns false to stop. An entry of layer i is live if no newer layer holds its key (one Lookup
// per newer layer), so this needs no memory beyond the layers. kCorruption if a layer's DATA is
// malformed (possible only on layers not opened with kFull).
Status ForEachLive(
    std::span<const Reader* const> layers,
    const std::function<bool(std::span<const std::byte>, std::span<const std::byte>)>& fn);

// The number of keys ForEachLive visits.
Result<uint64_t> LiveEntryCount(std::span<const Reader* const> layers);

}  // namespace modelswap::msf
