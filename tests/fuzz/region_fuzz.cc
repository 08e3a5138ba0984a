// libFuzzer target for a region file as both of its users meet it (sidecar/client/region/): a
// valid region with committed state, made by the real app side, damaged by the input
// (fuzz_patch.h), then read by the snapshot host's view (pin, find each block's version) and
// re-attached by an app (which validates and recovers). Damage must end in an error, never a
// crash, a hang or a read outside the file.
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sidecar/client/region/region.h"
#include "sidecar/client/region/region_view.h"
#include "tests/fuzz/fuzz_patch.h"

namespace {

constexpr modelswap::RegionOptions kOptions{.bytes = 4 * 4096, .block_bytes = 4096};

const std::vector<uint8_t>& ValidFile() {
  static const std::vector<uint8_t> bytes = [] {
    const std::string dir = modelswap::fuzz::ScratchDir() + "/base";
    ::mkdir(dir.c_str(), 0700);
    std::vector<uint8_t> out;
    {
      auto r = modelswap::Region::Open(dir, "r", kOptions);
      if (!r) return out;
      std::vector<std::byte> block(100, std::byte{7});
      for (uint64_t gen = 0; gen < 3; ++gen) {
        (void)r->Write(gen * 4096 + 10, block);
        (void)r->Commit();
      }
    }
    out = modelswap::fuzz::ReadFile(modelswap::RegionPath(dir, "r"));
    return out;
  }();
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> file = modelswap::fuzz::Damage(ValidFile(), data, size);
  const std::string dir = modelswap::fuzz::ScratchDir() + "/case";
  ::mkdir(dir.c_str(), 0700);
  ::mkdir((dir + "/regions").c_str(), 0700);
  modelswap::fuzz::WriteFile(modelswap::RegionPath(dir, "r"), file);
  if (auto view = modelswap::snapshot::RegionView::Open(dir, "r")) {
    (void)view->committed_gen();
    if (auto pin = view->Pin()) {
      for (uint64_t b = 0; b < view->block_count() && b < 64; ++b) {
        (void)view->PinnedVersion(b, *pin);
      }
    }
  }
  if (auto app = modelswap::Region::Open(dir, "r", kOptions)) {
    (void)app->Commit();
  }
  return 0;
}
