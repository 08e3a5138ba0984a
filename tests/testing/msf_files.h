// Building small .msf files for tests, and re-signing them after a deliberate corruption so the
// corruption reaches the checks behind the checksums.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/env.h"
#include "sidecar/msf/builder.h"
#include "sidecar/msf/cursor.h"
#include "sidecar/msf/format.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::testing {

using Entries = std::vector<std::pair<std::string, std::string>>;

inline std::vector<std::byte> ReadAll(const std::string& path) {
  auto text = ReadFileToString(DefaultEnv(), path, uint64_t{1} << 34);
  EXPECT_TRUE(text.has_value()) << path;
  auto bytes = std::as_bytes(std::span(*text));
  return {bytes.begin(), bytes.end()};
}

inline void WriteAll(const std::string& path, std::span<const std::byte> bytes) {
  auto fd = DefaultEnv()->Open(path, OpenMode::kTruncate);
  ASSERT_TRUE(fd.has_value());
  ASSERT_TRUE(DefaultEnv()->PWrite(*fd, bytes, 0).has_value());
  DefaultEnv()->Close(*fd);
}

// Builds an .msf at path from entries (in order). Fails the test on error.
inline msf::BuildResult BuildMsfFile(const std::string& path, const Entries& entries,
                                     const std::string& model = "m",
                                     const std::string& version = "v1") {
  Env* env = DefaultEnv();
  auto fd = env->Open(path, OpenMode::kReadWriteNew);
  EXPECT_TRUE(fd.has_value()) << path;
  msf::BuildOptions options;
  options.model = model;
  options.version = version;
  options.created_unix_ns = 1'700'000'000'000'000'000;
  msf::Builder builder(env, *fd, options);
  for (const auto& [k, v] : entries)
    EXPECT_TRUE(builder.Add(k, v).has_value());
  auto result = builder.Finish();
  env->Close(*fd);
  EXPECT_TRUE(result.has_value()) << (result ? "" : result.error().ToString());
  return result.value_or(msf::BuildResult{});
}

inline std::vector<std::byte> BuildMsfBytes(const Entries& entries, const std::string& model = "m",
                                            const std::string& version = "v1") {
  TempDir dir;
  BuildMsfFile(dir / "f.msf", entries, model, version);
  return ReadAll(dir / "f.msf");
}

// Recomputes every section checksum (for sections that lie inside the file) and the header
// checksum, after a test has changed bytes on purpose.
inline void Reseal(std::vector<std::byte>& f, bool sections = true) {
  if (f.size() < msf::kHeaderSize) return;
  uint32_t count = msf::LoadU32(f.data() + msf::kOffSectionCount);
  for (uint32_t i = 0; sections && i < std::min(count, msf::kMaxSections); ++i) {
    std::byte* s = f.data() + msf::kOffSections + i * msf::kSectionEntrySize;
    uint64_t off = msf::LoadU64(s + 8), len = msf::LoadU64(s + 16);
    if (off <= f.size() && len <= f.size() - off) {
      msf::StoreU64(s + 24, Xxh3(std::span<const std::byte>(f).subspan(off, len)));
    }
  }
  msf::StoreU64(f.data() + msf::kOffHeaderChecksum,
                Xxh3(std::span<const std::byte>(f).first(msf::kOffHeaderChecksum)));
}

// Reads/writes a u32/u64 field of the header or of section entry i.
inline void PutU64(std::vector<std::byte>& f, size_t off, uint64_t v) {
  msf::StoreU64(f.data() + off, v);
}
inline void PutU32(std::vector<std::byte>& f, size_t off, uint32_t v) {
  msf::StoreU32(f.data() + off, v);
}
inline size_t SectionField(size_t i, size_t field_off) {
  return msf::kOffSections + i * msf::kSectionEntrySize + field_off;
}

}  // namespace modelswap::testing
