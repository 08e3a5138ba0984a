// snapshot-app-test-bin: an app that keeps a self-checking state (state_check.h) in a region and
// commits it in a loop, for the multi-process crash test.
//
//   snapshot-app-test-bin SHM_DIR NAME PAGES [COMMITS]
//
// Attaches (recovering whatever a killed predecessor left), verifies the state, and prints one
// line: "attach gen=G created=C rolled_back=B rolled_forward=F restored=R durable=D", or
// "corrupt <why>" (exit 2) / "error <why>" (exit 3). Then updates and commits forever (until
// killed), or COMMITS times and prints "done gen=G".
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>

#include "tests/sidecar/snapshot/state_check.h"

namespace {

constexpr uint32_t kPage = 4096;

void PrintLine(const std::string& line) {
  const std::string out = line + "\n";
  (void)!::write(1, out.data(), out.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    PrintLine("error usage: snapshot-app-test-bin SHM_DIR NAME PAGES [COMMITS]");
    return 3;
  }
  const uint64_t pages = std::strtoull(argv[3], nullptr, 10);
  const uint64_t commits = argc == 5 ? std::strtoull(argv[4], nullptr, 10) : 0;
  auto region = modelswap::Region::Open(argv[1], argv[2], {pages * kPage, kPage});
  if (!region) {
    PrintLine("error " + region.error().ToString());
    return 3;
  }
  modelswap::testing::StateChecker state(region->bytes(), kPage);
  auto verified = state.Verify(region->generation());
  if (!verified) {
    PrintLine("corrupt gen=" + std::to_string(region->generation()) + " " +
              verified.error().message());
    return 2;
  }
  const auto& info = region->attach_info();
  PrintLine("attach gen=" + std::to_string(region->generation()) +
            " created=" + std::to_string(info.created) +
            " rolled_back=" + std::to_string(info.rolled_back_blocks) + " rolled_forward=" +
            std::to_string(info.rolled_forward) + " restored=" + std::to_string(info.restored_gen) +
            " durable=" + std::to_string(region->durable_generation()));
  std::mt19937_64 rng(std::random_device{}());
  for (uint64_t i = 0; commits == 0 || i < commits; ++i) {
    state.Update(*region, rng);
    region->Commit();
  }
  PrintLine("done gen=" + std::to_string(region->generation()));
  return 0;
}
