// libFuzzer target for the .msf reader and delta chains: any bytes in, never a crash or an
// out-of-bounds read, and a verified file or chain answers exactly what its DATA holds.
// Built only with clang (-DMODELSWAP_FUZZ=ON, see tests/fuzz/CMakeLists.txt); run by .ci/run for
// a short time, or by hand: ./msf_fuzz -max_total_time=600 corpus/
//
// Two modes, by the input's first bytes:
//  - an input starting with the .msf magic is a whole file: ParseHeader, Reader::Open at both
//    levels, lookups and walks; with kFull, Lookup must agree with the DATA walk;
//  - any other input damages one layer of a fixed chain (full base + two deltas) built once with
//    the real Builder: see tests/sidecar/msf/msf_chain_exercise.h for the input's layout and
//    the oracle (ValidateChain, ChainFind, ForEachLive over the layers that verify).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

#include "sidecar/msf/chain.h"
#include "sidecar/msf/reader.h"
#include "tests/fuzz/fuzz_patch.h"
#include "tests/sidecar/msf/msf_chain_exercise.h"

namespace {

using namespace modelswap::msf;  // NOLINT(google-build-using-namespace)

void Check(const std::string& error) {
  if (error.empty()) return;
  std::fprintf(stderr, "msf_fuzz: %s\n", error.c_str());
  std::abort();
}

void WholeFile(std::span<const std::byte> bytes) {
  (void)ParseHeader(bytes);
  static const std::vector<std::string> keys = {"k0", "k1", "absent", ""};
  for (VerifyLevel level : {VerifyLevel::kHeader, VerifyLevel::kFull}) {
    auto r = Reader::Open(bytes, level);
    if (!r) continue;
    for (const std::string& k : keys) {
      (void)r->Find(std::string_view(k));
      (void)r->Lookup(k);
    }
    (void)r->ForEach([](auto, auto) { return true; });
    (void)r->ForEachEntry([](auto, auto, bool) { return true; });
    const Reader* layer = &*r;
    (void)ChainFind(std::span(&layer, 1), std::string_view("k0"));
    (void)ValidateChain(std::span(&layer, 1));
    if (level == VerifyLevel::kFull) {
      modelswap::msf_testing::chain_exercise_internal::Contents contents;
      Check(modelswap::msf_testing::chain_exercise_internal::LayerContents(*r, keys, &contents));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  if (size >= sizeof kMagic && std::memcmp(data, kMagic, sizeof kMagic) == 0) {
    WholeFile(bytes);
    return 0;
  }
  static const modelswap::msf_testing::ChainFixture fixture =
      modelswap::msf_testing::BuildChainFixture(modelswap::fuzz::ScratchDir());
  Check(modelswap::msf_testing::ExerciseChain(fixture, data, size));
  return 0;
}
