// Structure-aware input for the file fuzzers: a valid file made by the real writer, damaged by the
// fuzzer's bytes, so that mutations start from something every early check accepts and reach the
// deep ones. The input is read as:
//   byte 0        truncation: 0..127 keeps the file whole, 128..255 cuts it to (b-128)/128 of its
//                 length (rounded down)
//   then triples  (offset lo, offset hi, value): file[offset % size] ^= value
// so an empty input is the valid file itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace modelswap::fuzz {

inline std::vector<uint8_t> Damage(std::vector<uint8_t> file, const uint8_t* data, size_t size) {
  if (size == 0 || file.empty()) return file;
  if (data[0] >= 128) file.resize(file.size() * (data[0] - 128) / 128);
  for (size_t i = 1; i + 2 < size && !file.empty(); i += 3) {
    size_t offset = (static_cast<size_t>(data[i]) | static_cast<size_t>(data[i + 1]) << 8);
    file[offset % file.size()] ^= data[i + 2];
  }
  return file;
}

inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

inline void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// A scratch directory in /dev/shm for this process (the shared-memory files live in tmpfs in a
// pod too); left for the OS to clean, as libFuzzer exits without running destructors.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    char tmpl[] = "/dev/shm/modelswap-fuzz-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    return std::string(d ? d : "/tmp");
  }();
  return dir;
}

}  // namespace modelswap::fuzz
