// LayerFilter construction: sizing and the DATA walk that feeds it (layer_filter.h).
#include "sidecar/msf/layer_filter.h"

namespace modelswap::msf {

LayerFilter LayerFilter::Sized(uint64_t entries) {
  LayerFilter f;
  // ceil(entries * kBitsPerKey / 256) blocks, at least one; entries <= kMaxEntries in practice,
  // and the division first keeps any count from overflowing.
  const uint64_t bits_per_block = 8 * sizeof(Block);
  const uint64_t blocks =
      entries / bits_per_block * kBitsPerKey +
      (entries % bits_per_block * kBitsPerKey + bits_per_block - 1) / bits_per_block;
  f.blocks_.assign(blocks == 0 ? 1 : blocks, Block{});
  return f;
}

LayerFilter LayerFilter::Build(const Reader& layer) {
  if (layer.size() > kMaxEntries) return LayerFilter();
  LayerFilter f = Sized(layer.size());
  const uint64_t seed = layer.hash_seed();
  uint64_t seen = 0;
  const Status walked = layer.ForEachEntry(
      [&](std::span<const std::byte> key, std::span<const std::byte>, bool /*tombstone*/) {
        f.Insert(HashKey(key, seed));
        ++seen;
        return true;
      });
  // A malformed DATA (possible only in a layer not opened with kFull) may hide entries its index
  // still finds: a filter built from it could say no to a key the layer holds. Pass all instead.
  if (!walked || seen != layer.size()) return LayerFilter();
  return f;
}

}  // namespace modelswap::msf
