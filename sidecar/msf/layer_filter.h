// LayerFilter: an in-memory split-block Bloom filter over one .msf layer's keys, so a chain lookup
// (msf/chain.h) can skip a delta that does not hold the key without touching its index.
//
// Why: a key that lives in the base misses in every delta above it, and each miss reads the
// delta's home slot: a trip to memory (overlapped by ChainFind's prefetch, but still traffic).
// Deltas are small (typically ~1 % of the keys), so at ~10 bits per key their filters sit in L2
// and answer "not here" for ~99 % of such keys.
//
// Design: Apache Parquet's split-block Bloom filter (parquet-format BloomFilter.md, after Impala
// and Putze et al.): 256-bit blocks of 8 x uint32; the block is chosen by fastrange (Lemire) on the
// upper 32 bits of the hash, and in it one bit per word by a salt multiply of the lower 32 bits.
// A check reads one 32-byte block (half a cache line). It is fed the SAME 64-bit hash the index
// uses, HashKey(key, layer.hash_seed()), so ChainFind hashes a key once for filter and index.
// Sized at kBitsPerKey bits per entry, tombstones included (a tombstone must pass, or a deleted
// key would fall through to an older layer's value). Measured false-positive rate at 10 bits per
// key: 1.27 % over 10^6 absent random hashes and 1.23 % over real XXH3-hashed keys
// (tests/sidecar/msf/layer_filter_test.cc, FalsePositiveRateNearDesign, RealKeysFalsePositiveRate),
// about 1.5x a classic Bloom filter's 0.8 %: the price of touching one 32-byte block per check.
//
// The filter is built by readers in memory when they open a layer, never stored in the file: the
// .msf format does not change (format.h).
//
// Never a false negative for a layer whose INDEX indexes exactly its DATA, which VerifyLevel::kFull
// proves (format.h, "Reader checks") and the client gets from the agent's verification plus the
// header checksum identity (sidecar/client/model/client.cc, OpenLayer). Build walks DATA, so if
// the walk fails or counts other than entry_count entries, it returns a pass-all filter instead.
//
// Thread safety: immutable after Build; any number of threads may check at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sidecar/msf/reader.h"

namespace modelswap::msf {

class LayerFilter {
 public:
  static constexpr uint32_t kBitsPerKey = 10;
  // No filter for layers with more entries: past ~4M keys the filter (5 MiB) no longer fits in
  // L2 (2 MiB per core on the bench VM) with room to spare, so a check is itself a likely memory
  // trip, which is what the skipped slot probe costs; and building hashes every key of the layer
  // at open (~tens of ns per key, see bench/delta/delta_lookup_bench.cc). Such layers are big
  // deltas, rare by design (compaction folds them, docs/design.md section 3.6).
  static constexpr uint64_t kMaxEntries = uint64_t{1} << 22;

  // A pass-all filter: MayContain is always true.
  LayerFilter() = default;

  // Hashes every entry of `layer` (values and tombstones, DATA order) with the layer's seed.
  // The reader must stay open for the call only. Pass-all if the layer has more than kMaxEntries
  // entries or its DATA walk fails or disagrees with entry_count (see above).
  static LayerFilter Build(const Reader& layer);

  // False only if no entry of the layer has this hash (hash = HashKey(key, layer.hash_seed())).
  bool MayContain(uint64_t hash) const {
    if (blocks_.empty()) return true;
    const Block& b = blocks_[BlockIndex(hash)];
    const uint32_t lo = static_cast<uint32_t>(hash);
    // Branch-free: the 8 words are independent, and a key a delta does not hold usually fails on
    // a random word, which an early exit would mispredict.
    uint32_t missing = 0;
    for (int i = 0; i < 8; ++i)
      missing |= ~b.words[i] & BitFor(lo, i);
    return missing == 0;
  }
  // Starts loading hash's block. Never faults and changes no result.
  void Prefetch(uint64_t hash) const {
    if (!blocks_.empty()) __builtin_prefetch(&blocks_[BlockIndex(hash)], /*rw=*/0, /*locality=*/3);
  }

  // Whether this filter can say no (false: pass-all, e.g. over kMaxEntries).
  bool active() const { return !blocks_.empty(); }
  size_t bytes() const { return blocks_.size() * sizeof(Block); }
  size_t block_count() const { return blocks_.size(); }

  // Adds a hash; Build's step, public for tests that fill a filter with chosen hashes.
  void Insert(uint64_t hash) {
    Block& b = blocks_[BlockIndex(hash)];
    const uint32_t lo = static_cast<uint32_t>(hash);
    for (int i = 0; i < 8; ++i)
      b.words[i] |= BitFor(lo, i);
  }
  // An empty (all-zero, says no to everything) filter sized for `entries` keys; at least one
  // block, so a layer with no entries gets a filter that rejects every key.
  static LayerFilter Sized(uint64_t entries);

 private:
  // 256 bits, 32-byte aligned so a block never straddles a cache line.
  struct alignas(32) Block {
    uint32_t words[8];
  };
  static_assert(sizeof(Block) == 32);

  // fastrange: maps the upper 32 bits onto [0, block count) without a division.
  size_t BlockIndex(uint64_t hash) const {
    return static_cast<size_t>(((hash >> 32) * static_cast<uint64_t>(blocks_.size())) >> 32);
  }
  // Parquet's salts (BloomFilter.md, "Technical Approach"): odd constants, one per word; the top
  // 5 bits of the 32-bit product pick the word's bit.
  static uint32_t BitFor(uint32_t lo, int i) {
    static constexpr uint32_t kSalt[8] = {0x47b6137bU, 0x44974d91U, 0x8824ad5bU, 0xa2b7289dU,
                                          0x705495c7U, 0x2df1424bU, 0x9efc4947U, 0x5c6bfb31U};
    return uint32_t{1} << ((lo * kSalt[i]) >> 27);
  }

  std::vector<Block> blocks_;  // empty: pass-all
};

}  // namespace modelswap::msf
