// libFuzzer target for the recipe decoder (sidecar/chunk/recipe.h): any bytes in, a Recipe or a
// kCorruption naming the problem out; never a crash, never an allocation the input's size does
// not justify. A decoded recipe must encode back to exactly the input (the format has one
// encoding per recipe).
//
// Input: byte 0 selects the mode, the rest is the recipe. The trailing XXH3 checksum is checked
// before the entries, so raw mutations rarely get past it: with bit 0 of byte 0 set, the target
// re-seals the checksum first, and the mutations reach the header, name and entry checks.
// Seeds cover both formats: version 1 and version 2 (corpus/recipe_fuzz/v2-delta*: a delta
// entry, a hole and a whole entry), so mutations reach delta_count, the delta flag and the base
// records too; round trip keeps holding because a version 2 recipe always has a delta entry.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "common/checksum.h"
#include "sidecar/chunk/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace modelswap::chunk;
  if (size == 0) return 0;
  const bool reseal = (data[0] & 1) != 0;
  std::vector<std::byte> bytes(size - 1);
  if (size > 1) std::memcpy(bytes.data(), data + 1, size - 1);
  if (reseal && bytes.size() >= kRecipeTrailerBytes) {
    size_t body = bytes.size() - kRecipeTrailerBytes;
    uint64_t sum = modelswap::Xxh3(std::span(bytes).first(body));
    std::memcpy(bytes.data() + body, &sum, sizeof sum);
  }
  auto recipe = DecodeRecipe(bytes);
  if (!recipe) {
    if (recipe.error().code() != modelswap::Code::kCorruption) std::abort();
    return 0;
  }
  std::string again = EncodeRecipe(*recipe);
  if (again.size() != bytes.size() || std::memcmp(again.data(), bytes.data(), bytes.size()) != 0) {
    std::abort();  // two encodings of one recipe, or a field the decoder dropped
  }
  return 0;
}
