// Layers of a delta chain on a test volume: full and delta .msf files built with msf::Builder,
// stored whole (versions/<v>.msf) or chunked (recipe + chunk store, through the writer's
// UploadChunked, as `write` stores them).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/msf/builder.h"
#include "sidecar/writer/chunked_upload.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::testing {

struct LayerSpec {
  std::string version;
  std::vector<std::pair<std::string, std::string>> upserts;
  std::vector<std::string> tombstones;  // deltas only
  std::optional<msf::DeltaBase> base;   // set: a delta
  bool chunked = false;
  std::string model = "ranker";  // the model the header names
};

class ChainVolume {
 public:
  ChainVolume() {
    std::filesystem::create_directories(root_);
    std::filesystem::create_directories(scratch_);
  }
  const std::string& root() const { return root_; }

  // Builds the layer and stores it under <root>/ranker; returns its header checksum.
  uint64_t Put(const LayerSpec& spec) {
    const std::string path = scratch_ + "/" + spec.version + "-" + std::to_string(serial_++);
    Env* env = DefaultEnv();
    auto fd = env->Open(path, OpenMode::kReadWriteNew);
    EXPECT_TRUE(fd.has_value()) << path;
    msf::BuildOptions options;
    options.model = spec.model;
    options.version = spec.version;
    options.created_unix_ns = 1'700'000'000'000'000'000;
    options.delta = spec.base;
    msf::Builder builder(env, *fd, options);
    for (const auto& [k, v] : spec.upserts)
      EXPECT_TRUE(builder.Add(k, v).has_value());
    for (const std::string& k : spec.tombstones)
      EXPECT_TRUE(builder.AddTombstone(k).has_value());
    auto built = builder.Finish();
    env->Close(*fd);
    EXPECT_TRUE(built.has_value()) << built.error().ToString();
    if (!built) return 0;
    std::filesystem::create_directories(VersionsDir(root_, "ranker"));
    if (spec.chunked) {
      ChunkedUploadOptions up;
      up.params = chunk::ChunkerParams{2 << 10, 8 << 10, 32 << 10};
      auto r = UploadChunked(env, root_, "ranker", spec.version, path, built->header_checksum, up);
      EXPECT_TRUE(r.has_value()) << r.error().ToString();
      std::filesystem::remove(path);
    } else {
      std::filesystem::rename(path, VersionPath(root_, "ranker", spec.version));
    }
    return built->header_checksum;
  }

  // A full layer of n entries "k<i>" -> "<tag><i>" (values long enough for several chunks).
  uint64_t Full(const std::string& version, bool chunked, int n = 300,
                const std::string& tag = "v") {
    LayerSpec s{version, {}, {}, std::nullopt, chunked};
    for (int i = 0; i < n; ++i)
      s.upserts.emplace_back("k" + std::to_string(i),
                             tag + std::to_string(i) + std::string(100, 'x'));
    return Put(s);
  }
  // A delta on base (checksum base_sum, depth) upserting one key and deleting another.
  uint64_t Delta(const std::string& version, const std::string& base, uint64_t base_sum,
                 uint32_t depth, bool chunked) {
    LayerSpec s{version,
                {{"k1", "new-" + version}},
                {"k2"},
                msf::DeltaBase{base, base_sum, depth},
                chunked};
    return Put(s);
  }

 private:
  TempDir dir_;
  std::string root_ = dir_ / "volume";
  std::string scratch_ = dir_ / "scratch";
  int serial_ = 0;
};

}  // namespace modelswap::testing
