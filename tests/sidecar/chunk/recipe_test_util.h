// Helpers shared by the recipe tests (recipe_test.cc, recipe_delta_test.cc): hand-editing an
// encoded recipe at known offsets, re-sealing its checksum so a test reaches the checks after it,
// and expecting a named kCorruption.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "common/checksum.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::chunk::testing {

inline std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span(s));
}

// Re-seals a hand-edited recipe with a correct trailing checksum.
inline std::string Reseal(std::string text) {
  text.resize(text.size() - kRecipeTrailerBytes);
  uint64_t sum = Xxh3(text);
  text.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  return text;
}

inline void ExpectCorrupt(const std::string& text, const std::string& words) {
  auto r = DecodeRecipe(Bytes(text));
  ASSERT_FALSE(r.has_value()) << "accepted; expected: " << words;
  EXPECT_EQ(r.error().code(), Code::kCorruption) << r.error().ToString();
  EXPECT_NE(r.error().message().find(words), std::string::npos) << r.error().message();
}

// Where entry i starts in r's encoding.
inline size_t EntryAt(const Recipe& r, size_t i) {
  return kRecipeFixedHeaderBytes + r.model.size() + r.version.size() + i * kRecipeEntryBytes;
}

inline uint32_t U32At(const std::string& text, size_t at) {
  uint32_t v;
  std::memcpy(&v, text.data() + at, 4);
  return v;
}
inline void SetU32(std::string& text, size_t at, uint32_t v) {
  std::memcpy(text.data() + at, &v, 4);
}

}  // namespace modelswap::chunk::testing
