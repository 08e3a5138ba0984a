// A gtest fixture for node cache tests: a temp work dir holding the cache, the "volume" of chunk
// files and the source .msf files, plus helpers to assemble and inspect.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <string>
#include <vector>

#include "sidecar/cache/assembler.h"
#include "sidecar/cache/cache_layout.h"
#include "tests/sidecar/cache/cache_test_util.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::cache::testing {

class CacheTest : public ::testing::Test {
 protected:
  CacheOptions Options() const {
    CacheOptions o;
    o.dir = cache_dir();
    o.fetch_threads = 3;
    return o;
  }
  std::string cache_dir() const { return tmp_ / "cache"; }
  std::string volume() const { return tmp_ / "volume"; }
  std::string work() const { return tmp_.path(); }

  Version Make(const VersionSpec& s) { return MakeVersion(work(), volume(), s); }

  // A fetch over the volume dir that counts calls.
  ChunkSourceFn CountingFetch() {
    return
        [this](const chunk::RecipeChunk& c, std::span<const std::byte>, std::span<std::byte> out) {
          fetches_.fetch_add(1);
          return FetchFromDir(volume(), c.hash, out);
        };
  }

  // Names in the model's cache directory.
  std::vector<std::string> ModelDirNames(const std::string& model) {
    auto names = DefaultEnv()->ListDir(ModelCacheDir(cache_dir(), model));
    return names.value_or(std::vector<std::string>{});
  }
  bool HasTemp(const std::string& model) {
    for (const auto& n : ModelDirNames(model)) {
      if (n.find(".tmp-") != std::string::npos) return true;
    }
    return false;
  }
  std::string FinalPath(const Version& v) {
    return JoinPath(ModelCacheDir(cache_dir(), v.recipe.model),
                    AssembledFileName(v.recipe.version, v.recipe.msf_checksum));
  }
  static bool Exists(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
  }

  modelswap::testing::TempDir tmp_;
  std::atomic<int> fetches_{0};
};

}  // namespace modelswap::cache::testing
