// Chains of .msf layers: validation, lookup and the live-key walk (chain.h).
#include "sidecar/msf/chain.h"

#include <string>

#include "common/checksum.h"

namespace modelswap::msf {
namespace {

std::unexpected<Error> Mismatch(std::string what) {
  return Fail(Code::kFailedPrecondition, "msf: " + std::move(what));
}

// "v8" for the message; the version name is what operators know a layer by.
std::string Name(const Reader& r) {
  return r.header().version.empty() ? std::string("(unnamed)") : r.header().version;
}

}  // namespace

Status ValidateChain(std::span<const Reader* const> layers) {
  if (layers.empty()) return Mismatch("a chain needs at least one layer");
  if (layers.size() > kMaxChainLayers) {
    return Mismatch("chain of " + std::to_string(layers.size()) + " layers exceeds the limit of " +
                    std::to_string(kMaxChainLayers) + " (a full base and " +
                    std::to_string(kMaxChainDeltas) + " deltas)");
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] == nullptr) return Mismatch("chain layer " + std::to_string(i) + " is missing");
  }
  const Reader& bottom = *layers.back();
  if (bottom.is_delta()) {
    return Mismatch("the bottom layer of the chain, " + Name(bottom) + ", is a delta (on " +
                    bottom.header().base_version + "), not a full version");
  }
  const std::string& model = layers.front()->header().model;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Reader& layer = *layers[i];
    if (layer.header().model != model) {
      return Mismatch("layer " + Name(layer) + " is of model \"" + layer.header().model +
                      "\", but the chain's top layer is of model \"" + model + "\"");
    }
    if (i + 1 == layers.size()) break;
    const Reader& below = *layers[i + 1];
    const Header& h = layer.header();
    if (!layer.is_delta()) {
      return Mismatch("layer " + Name(layer) + " is a full version but has " +
                      std::to_string(layers.size() - 1 - i) + " layers below it in the chain");
    }
    if (h.base_version != below.header().version ||
        h.base_checksum != below.header().header_checksum) {
      return Mismatch("delta " + Name(layer) + " names base " + h.base_version + " checksum " +
                      FormatChecksum(h.base_checksum) + ", but the layer below is " + Name(below) +
                      " " + below.checksum());
    }
    const uint64_t depth = layers.size() - 1 - i;
    if (h.chain_depth != depth) {
      return Mismatch("delta " + Name(layer) + " has chain depth " + std::to_string(h.chain_depth) +
                      ", but " + std::to_string(depth) + " deltas lie from the full base " +
                      Name(bottom) + " up to it");
    }
  }
  return Ok();
}

std::optional<std::span<const std::byte>> ChainFind(std::span<const Reader* const> layers,
                                                    std::span<const LayerFilter* const> filters,
                                                    std::span<const std::byte> key) {
  // A key that lives in the base misses in every delta first: probed one after another, each
  // layer's index slot is its own trip to memory. So hash once per distinct seed (the writer
  // gives every layer the base's seed), prefetch every layer's home slot, then probe newest
  // first: the misses overlap and the chain costs about one slot miss plus one entry miss,
  // like a single file. A layer whose filter rejects the hash is skipped before its slot is
  // even prefetched: its index costs no memory traffic at all (filters are small enough to sit
  // in cache, layer_filter.h). The slots of unfiltered layers (the base) are prefetched in the
  // first pass, so their trip to memory overlaps the filter checks. Chains longer than
  // ValidateChain allows just skip the prefetch and the filters. No allocation: the per-layer
  // state lives on the stack.
  uint64_t hashes[kMaxChainLayers];
  bool skip[kMaxChainLayers] = {};
  const size_t n = layers.size();
  const bool filtered = filters.size() == n;
  if (n <= kMaxChainLayers) {
    for (size_t i = 0; i < n; ++i) {
      const uint64_t seed = layers[i]->hash_seed();
      hashes[i] = i > 0 && seed == layers[i - 1]->hash_seed() ? hashes[i - 1] : HashKey(key, seed);
      if (filtered && filters[i] != nullptr) {
        filters[i]->Prefetch(hashes[i]);
      } else {
        layers[i]->PrefetchSlot(hashes[i]);
      }
    }
    for (size_t i = 0; filtered && i < n; ++i) {
      if (filters[i] == nullptr) continue;
      if (filters[i]->MayContain(hashes[i])) {
        layers[i]->PrefetchSlot(hashes[i]);
      } else {
        skip[i] = true;
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (n > kMaxChainLayers) {
      const Probe p = layers[i]->Lookup(key);
      if (p.presence == Presence::kValue) return p.value;
      if (p.presence == Presence::kTombstone) return std::nullopt;
      continue;
    }
    if (skip[i]) continue;
    const Probe p = layers[i]->LookupHashed(key, hashes[i]);
    if (p.presence == Presence::kValue) return p.value;
    if (p.presence == Presence::kTombstone) return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::span<const std::byte>> ChainFind(std::span<const Reader* const> layers,
                                                    std::span<const std::byte> key) {
  return ChainFind(layers, {}, key);
}

std::optional<std::string_view> ChainFind(std::span<const Reader* const> layers,
                                          std::span<const LayerFilter* const> filters,
                                          std::string_view key) {
  auto value = ChainFind(layers, filters, std::as_bytes(std::span(key)));
  if (!value) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(value->data()), value->size());
}

std::optional<std::string_view> ChainFind(std::span<const Reader* const> layers,
                                          std::string_view key) {
  return ChainFind(layers, {}, key);
}

Status ForEachLive(
    std::span<const Reader* const> layers,
    const std::function<bool(std::span<const std::byte>, std::span<const std::byte>)>& fn) {
  bool stopped = false;
  for (size_t i = 0; i < layers.size() && !stopped; ++i) {
    const auto newer = layers.first(i);
    MS_RETURN_IF_ERROR(
        layers[i]->ForEach([&](std::span<const std::byte> key, std::span<const std::byte> value) {
          for (const Reader* n : newer) {
            if (n->Lookup(key).presence != Presence::kAbsent) return true;  // shadowed
          }
          if (!fn(key, value)) stopped = true;
          return !stopped;
        }));
  }
  return Ok();
}

Result<uint64_t> LiveEntryCount(std::span<const Reader* const> layers) {
  uint64_t n = 0;
  MS_RETURN_IF_ERROR(ForEachLive(layers, [&n](auto, auto) {
    ++n;
    return true;
  }));
  return n;
}

}  // namespace modelswap::msf
