// libFuzzer target for the manifest parser (sidecar/volume/manifest.h): any text in, a Manifest
// or a kCorruption naming the problem out; never a crash. A decoded manifest must encode back to
// text that decodes to the same fields (the checksum covers every field).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sidecar/volume/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = modelswap::DecodeManifest(text);
  if (!m) return 0;
  auto again = modelswap::DecodeManifest(modelswap::EncodeManifest(*m));
  if (!again || again->version != m->version || again->generation != m->generation ||
      again->checksum != m->checksum || again->file != m->file) {
    std::abort();  // a manifest that does not survive its own encoding
  }
  return 0;
}
