// Run-time choice of the XXH3 variant, and the checksum text form.
#include "common/checksum.h"

#include <cstdio>
#include <utility>

namespace modelswap {
namespace checksum_internal {
#define DECLARE_VARIANT(name)                                  \
  namespace name {                                             \
  uint64_t Hash(const void* data, size_t size, uint64_t seed); \
  void* NewState();                                            \
  void FreeState(void* state);                                 \
  void Update(void* state, const void* data, size_t size);     \
  uint64_t Digest(const void* state);                          \
  }
DECLARE_VARIANT(sse2)
DECLARE_VARIANT(avx2)
DECLARE_VARIANT(avx512)
#undef DECLARE_VARIANT

struct Variant {
  std::string_view name;
  uint64_t (*hash)(const void*, size_t, uint64_t);
  void* (*new_state)();
  void (*free_state)(void*);
  void (*update)(void*, const void*, size_t);
  uint64_t (*digest)(const void*);
};

#define VARIANT(name)                                                              \
  Variant {                                                                        \
#name, name::Hash, name::NewState, name::FreeState, name::Update, name::Digest \
  }

const Variant& Chosen() {
  // A function-local static: initialised once, thread-safely, on first use.
  static const Variant variant = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return VARIANT(avx512);
    if (__builtin_cpu_supports("avx2")) return VARIANT(avx2);
    return VARIANT(sse2);
  }();
  return variant;
}
#undef VARIANT
}  // namespace checksum_internal

using checksum_internal::Chosen;

uint64_t Xxh3(std::span<const std::byte> data) {
  return Chosen().hash(data.data(), data.size(), 0);
}
uint64_t Xxh3WithSeed(std::span<const std::byte> data, uint64_t seed) {
  return Chosen().hash(data.data(), data.size(), seed);
}

Xxh3Stream::Xxh3Stream() : state_(Chosen().new_state()) {}
Xxh3Stream::~Xxh3Stream() {
  if (state_ != nullptr) Chosen().free_state(state_);
}
Xxh3Stream::Xxh3Stream(Xxh3Stream&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)) {}
Xxh3Stream& Xxh3Stream::operator=(Xxh3Stream&& other) noexcept {
  std::swap(state_, other.state_);
  return *this;
}
void Xxh3Stream::Update(std::span<const std::byte> data) {
  Chosen().update(state_, data.data(), data.size());
}
uint64_t Xxh3Stream::Digest() const {
  return Chosen().digest(state_);
}

std::string FormatChecksum(uint64_t checksum) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "xxh3:%016llx", static_cast<unsigned long long>(checksum));
  return buf;
}

bool ParseChecksum(std::string_view text, uint64_t* out) {
  constexpr std::string_view kPrefix = "xxh3:";
  if (text.size() != kPrefix.size() + 16 || !text.starts_with(kPrefix)) return false;
  uint64_t value = 0;
  for (char c : text.substr(kPrefix.size())) {
    int digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else
      return false;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  *out = value;
  return true;
}

std::string_view ChecksumVariant() {
  return Chosen().name;
}

}  // namespace modelswap
