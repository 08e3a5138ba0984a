// Building delta .msf layers for the msf tests: a list of operations (upsert or delete) written
// through msf::Builder into a temp file and read back as bytes.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/env.h"
#include "sidecar/msf/builder.h"
#include "tests/testing/msf_files.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::msf_testing {
// Only these helpers live here, so the format's and the shared test helpers' names may be used
// unqualified.
using namespace modelswap::msf;      // NOLINT(google-build-using-namespace)
using namespace modelswap::testing;  // NOLINT(google-build-using-namespace)

// One change: value set = upsert, nullopt = delete (a tombstone).
struct Op {
  std::string key;
  std::optional<std::string> value;
};
using Ops = std::vector<Op>;

inline Ops Upserts(const Entries& entries) {
  Ops ops;
  for (const auto& [k, v] : entries)
    ops.push_back({k, v});
  return ops;
}

// Writes ops in order with `options` (a delta when options.delta is set). Returns the Builder's
// error, if any, so tests can check refusals; bytes in *out on success.
inline Status BuildLayer(const Ops& ops, const BuildOptions& options, std::vector<std::byte>* out,
                         BuildResult* result = nullptr) {
  TempDir dir;
  Env* env = DefaultEnv();
  auto fd = env->Open(dir / "f.msf", OpenMode::kReadWriteNew);
  if (!fd) return std::unexpected(fd.error());
  Status status = Ok();
  {
    Builder builder(env, *fd, options);
    for (const Op& op : ops) {
      status = op.value ? builder.Add(op.key, *op.value) : builder.AddTombstone(op.key);
      if (!status) break;
    }
    if (status) {
      auto r = builder.Finish();
      if (!r) {
        status = std::unexpected(r.error());
      } else if (result != nullptr) {
        *result = *r;
      }
    }
  }
  env->Close(*fd);
  if (status) *out = ReadAll(dir / "f.msf");
  return status;
}

inline BuildOptions LayerOptions(const std::string& version, const std::string& model = "m") {
  BuildOptions o;
  o.model = model;
  o.version = version;
  o.created_unix_ns = 1'700'000'000'000'000'000;
  return o;
}

inline BuildOptions DeltaOptions(const std::string& version, const std::string& base,
                                 uint64_t base_checksum, uint32_t depth,
                                 const std::string& model = "m") {
  BuildOptions o = LayerOptions(version, model);
  o.delta = DeltaBase{base, base_checksum, depth};
  return o;
}

// Builds or fails the test.
inline std::vector<std::byte> MustBuild(const Ops& ops, const BuildOptions& options) {
  std::vector<std::byte> out;
  Status s = BuildLayer(ops, options, &out);
  EXPECT_TRUE(s.has_value()) << s.error().ToString();
  return out;
}

inline uint64_t HeaderChecksumOf(const std::vector<std::byte>& file) {
  return LoadU64(file.data() + kOffHeaderChecksum);
}

}  // namespace modelswap::msf_testing
