// Synthetic model data for demos, tests and benchmarks (`write --generate-bytes`).
//
// Keys are the decimal strings "0", "1", ...; the value of key k is
// "<model>/<version>/<k>/" followed by filler bytes from a PRNG seeded by (seed, k), up to
// value_bytes in total (never shorter than the prefix). Any reader can therefore check that a
// value belongs to the version it thinks it is reading, and tests can recompute it exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace modelswap {

inline constexpr uint32_t kDefaultValueBytes = 1024;

// Writes the value of key k into *out (resized).
void SyntheticValue(std::string_view model, std::string_view version, uint64_t k, uint64_t seed,
                    uint32_t value_bytes, std::string* out);

// The "<model>/<version>/<k>/" prefix every synthetic value starts with.
std::string SyntheticPrefix(std::string_view model, std::string_view version, uint64_t k);

}  // namespace modelswap
