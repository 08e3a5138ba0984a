// A process that assembles one version into a node cache, for the multi-process tests and the
// benchmark: it reads a recipe file, fetches chunks from a directory of <hex> files (or, with
// --store, from a ChunkStore, delta chunks included), appends the hex of every fetch to a log
// ("<hex>.<base hex>" for a delta; O_APPEND: one line per write), and writes one result line.
//
//   cache_helper --cache DIR --recipe FILE (--volume DIR | --store ROOT) --log FILE --result FILE
//                [--threads N] [--max-bytes N] [--start-after FILE]
//                [--block-on HEX --blocked-marker FILE]   fetching HEX: mark, then sleep forever
//                [--hold-until FILE --held-marker FILE]   after assembling: hold until FILE exists
//                [--ns-per-byte N]                        throttle fetches (simulated bandwidth)
// Result line: "ok <path> fetched=N cache=N previous=N already=0|1 waited=0|1 deltas=N
// bases_fetched=N" or "error <text>".
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "sidecar/cache/assembler.h"
#include "tests/sidecar/cache/cache_test_util.h"

namespace cache = modelswap::cache;
namespace chunk = modelswap::chunk;

namespace {

bool Exists(const std::string& p) {
  return ::access(p.c_str(), F_OK) == 0;
}

void Touch(const std::string& p) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
}

// Waits (bounded: 120 s) for a file to appear.
bool WaitFor(const std::string& p) {
  for (int i = 0; i < 12000; ++i) {
    if (Exists(p)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void AppendLine(const std::string& path, const std::string& line) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string l = line + "\n";
  (void)!::write(fd, l.data(), l.size());
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2)
    a[argv[i]] = argv[i + 1];
  auto arg = [&](const std::string& k) { return a.contains(k) ? a[k] : std::string(); };
  std::string result = arg("--result");
  auto bytes = cache::testing::ReadWhole(arg("--recipe"));
  auto recipe = chunk::DecodeRecipe(bytes);
  if (!recipe) {
    AppendLine(result, "error " + recipe.error().ToString());
    return 1;
  }
  cache::CacheOptions o;
  o.dir = arg("--cache");
  if (!arg("--threads").empty()) o.fetch_threads = std::stoi(arg("--threads"));
  if (!arg("--max-bytes").empty()) o.max_bytes = std::stoull(arg("--max-bytes"));
  std::string block_on = arg("--block-on");
  int64_t ns_per_byte = arg("--ns-per-byte").empty() ? 0 : std::stoll(arg("--ns-per-byte"));
  std::string volume = arg("--volume"), log = arg("--log");
  cache::ChunkSourceFn store;
  if (!arg("--store").empty()) {
    store = cache::ChunkStoreSource(
        std::make_shared<chunk::ChunkStore>(modelswap::DefaultEnv(), arg("--store")));
  }

  auto fetch = [&](const chunk::RecipeChunk& c, std::span<const std::byte> base,
                   std::span<std::byte> out) -> modelswap::Status {
    std::string hex = chunk::ToHex(c.hash);
    if (hex == block_on) {
      Touch(arg("--blocked-marker"));
      for (;;)
        std::this_thread::sleep_for(std::chrono::seconds(1));  // until SIGKILLed
    }
    AppendLine(log, c.delta ? hex + "." + chunk::ToHex(c.base_hash) : hex);
    if (ns_per_byte > 0) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(ns_per_byte * int64_t(out.size())));
    }
    if (store) return store(c, base, out);
    return cache::testing::FetchFromDir(volume, c.hash, out);
  };
  if (!arg("--start-after").empty()) WaitFor(arg("--start-after"));
  auto got = cache::Assemble(modelswap::DefaultEnv(), o, *recipe, fetch);
  if (!got) {
    AppendLine(result, "error " + got.error().ToString());
    return 1;
  }
  const auto& s = got->stats;
  AppendLine(result, "ok " + got->path + " fetched=" + std::to_string(s.chunks_fetched) +
                         " cache=" + std::to_string(s.chunks_from_cache) +
                         " previous=" + std::to_string(s.chunks_from_previous) +
                         " already=" + std::to_string(s.already_assembled) +
                         " waited=" + std::to_string(s.waited_for_builder) +
                         " deltas=" + std::to_string(s.delta_chunks_fetched) +
                         " bases_fetched=" + std::to_string(s.bases_fetched));
  if (!arg("--hold-until").empty()) {
    Touch(arg("--held-marker"));
    WaitFor(arg("--hold-until"));
  }
  return 0;
}
