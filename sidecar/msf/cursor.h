// Bounds-checked little-endian decoding over a byte span: the only way .msf bytes are read.
//
// Each Get* reads from the front, advances past what it read, and returns false (leaving the
// cursor unchanged) when the input is too short. Range checks are written so they cannot
// overflow: `n <= size - pos`, never `pos + n <= size`.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace modelswap::msf {

// Unchecked: the caller guarantees 4 (or 8) readable bytes at p.
inline uint32_t LoadU32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  static_assert(std::endian::native == std::endian::little, "big-endian hosts need byte swaps");
  return v;
}
inline uint64_t LoadU64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void StoreU32(std::byte* p, uint32_t v) {
  std::memcpy(p, &v, sizeof v);
}
inline void StoreU64(std::byte* p, uint64_t v) {
  std::memcpy(p, &v, sizeof v);
}

class Cursor {
 public:
  explicit Cursor(std::span<const std::byte> data) : data_(data) {}

  size_t position() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }

  [[nodiscard]] bool GetU32(uint32_t* out) {
    if (remaining() < 4) return false;
    *out = LoadU32(data_.data() + pos_);
    pos_ += 4;
    return true;
  }
  [[nodiscard]] bool GetU64(uint64_t* out) {
    if (remaining() < 8) return false;
    *out = LoadU64(data_.data() + pos_);
    pos_ += 8;
    return true;
  }
  [[nodiscard]] bool GetBytes(uint64_t n, std::span<const std::byte>* out) {
    if (n > remaining()) return false;
    *out = data_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }
  [[nodiscard]] bool Skip(uint64_t n) {
    if (n > remaining()) return false;
    pos_ += static_cast<size_t>(n);
    return true;
  }

 private:
  std::span<const std::byte> data_;
  size_t pos_ = 0;
};

}  // namespace modelswap::msf
