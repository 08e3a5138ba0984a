// libFuzzer target for the manifest parser (sidecar/volume/manifest.h): any text in, a Manifest
// or a kCorruption naming the problem out; never a crash. A decoded manifest must encode back to
// text that decodes to the same fields, the optional recipe and chain (a delta's lower layers)
// included (the checksum covers every field).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sidecar/volume/manifest.h"

namespace {

bool SameFields(const modelswap::Manifest& a, const modelswap::Manifest& b) {
  return a.model == b.model && a.version == b.version && a.file == b.file && a.bytes == b.bytes &&
         a.checksum == b.checksum && a.generation == b.generation &&
         a.published_at == b.published_at && a.recipe == b.recipe && a.chain == b.chain;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = modelswap::DecodeManifest(text);
  if (!m) return 0;
  // What DecodeManifest accepts obeys the chain's bounds.
  if (m->chain.size() > modelswap::kMaxManifestChain) std::abort();
  for (const modelswap::ManifestLayer& layer : m->chain) {
    if (layer.version == m->version) std::abort();
  }
  auto again = modelswap::DecodeManifest(modelswap::EncodeManifest(*m));
  if (!again || !SameFields(*again, *m)) {
    std::abort();  // a manifest that does not survive its own encoding
  }
  return 0;
}
