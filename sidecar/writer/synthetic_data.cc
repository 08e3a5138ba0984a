// Synthetic values: a prefix naming model, version and key, then seeded filler.
#include "sidecar/writer/synthetic_data.h"

#include <cstring>

namespace modelswap {
namespace {
// wyrand: one multiply per 8 bytes, so filler costs far less than writing it out.
inline uint64_t WyRand(uint64_t* state) {
  *state += 0xa0761d6478bd642fULL;
  __uint128_t t = static_cast<__uint128_t>(*state) * (*state ^ 0xe7037ed1a0b428dbULL);
  return static_cast<uint64_t>(t >> 64) ^ static_cast<uint64_t>(t);
}
}  // namespace

std::string SyntheticPrefix(std::string_view model, std::string_view version, uint64_t k) {
  std::string p;
  p.reserve(model.size() + version.size() + 24);
  p.append(model).push_back('/');
  p.append(version).push_back('/');
  p.append(std::to_string(k)).push_back('/');
  return p;
}

void SyntheticValue(std::string_view model, std::string_view version, uint64_t k, uint64_t seed,
                    uint32_t value_bytes, std::string* out) {
  std::string prefix = SyntheticPrefix(model, version, k);
  size_t total = std::max<size_t>(value_bytes, prefix.size());
  out->resize(total);
  std::memcpy(out->data(), prefix.data(), prefix.size());
  uint64_t state = seed * 0x9e3779b97f4a7c15ULL ^ k;
  for (size_t i = prefix.size(); i < total; i += 8) {
    uint64_t r = WyRand(&state);
    std::memcpy(out->data() + i, &r, std::min<size_t>(8, total - i));
  }
}

}  // namespace modelswap
