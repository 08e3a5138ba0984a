// libFuzzer target for the .msf reader: any bytes in, never a crash or out-of-bounds read.
// Built only with clang (-DMODELSWAP_FUZZ=ON, see tests/fuzz/CMakeLists.txt); run by .ci/run for
// a short time, or by hand: ./msf_fuzz -max_total_time=600 corpus/
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "sidecar/msf/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace modelswap::msf;
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  for (VerifyLevel level : {VerifyLevel::kHeader, VerifyLevel::kFull}) {
    auto r = Reader::Open(bytes, level);
    if (!r) continue;
    (void)r->Find(std::string_view("k0"));
    (void)r->Find(std::string_view("absent"));
    (void)r->ForEach([](auto, auto) { return true; });
  }
  return 0;
}
