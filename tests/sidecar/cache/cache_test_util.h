// Inputs for node cache tests: a real .msf (sidecar/msf/builder.h), chunked into a recipe by the
// chunk library, each data chunk kept as a file in a "volume" directory that a test fetch
// function reads (counting, corrupting, blocking or sleeping as a test needs).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common/env.h"
#include "sidecar/cache/chunk_cache.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/msf/builder.h"

namespace modelswap::cache::testing {

// Small chunks, so a few-hundred-KiB file has dozens of them.
inline chunk::ChunkerParams SmallParams() {
  return {2048, 8192, 32768};
}

struct Version {
  std::string msf_path;
  chunk::Recipe recipe;
  std::vector<std::byte> bytes;
};

// entries "k<i>" -> value: `value_bytes` of a pattern seeded by (seed, i); keys in
// [changed_from, changed_to), and every `changed_every`-th key if that is > 0, get seed + 1000
// instead (a partial change); `zero_value_bytes` > 0 adds one entry of that many zero bytes (a
// hole in the recipe).
struct VersionSpec {
  std::string model = "ranker";
  std::string version = "v1";
  int entries = 200;
  size_t value_bytes = 1000;
  uint32_t seed = 1;
  int changed_from = 0, changed_to = 0;
  int changed_every = 0;
  size_t zero_value_bytes = 0;
};

inline std::string ValueFor(const VersionSpec& s, int i) {
  bool changed = (i >= s.changed_from && i < s.changed_to) ||
                 (s.changed_every > 0 && i % s.changed_every == 0);
  uint32_t seed = changed ? s.seed + 1000 : s.seed;
  std::string v(s.value_bytes, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i) * 0xBF58476D1CE4E5B9ull;
  for (auto& c : v) {
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    c = static_cast<char>('a' + (x >> 59));
  }
  return v;
}

inline std::vector<std::byte> ReadWhole(const std::string& path) {
  auto s = ReadFileToString(DefaultEnv(), path, uint64_t{1} << 34);
  if (!s) return {};
  auto b = std::as_bytes(std::span(*s));
  return {b.begin(), b.end()};
}

inline void WriteWhole(const std::string& path, std::span<const std::byte> bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) std::abort();
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

// Builds <work>/<model>-<version>.msf, chunks it, writes each data chunk to <volume>/<hex>.
inline Version MakeVersion(const std::string& work, const std::string& volume,
                           const VersionSpec& s) {
  Env* env = DefaultEnv();
  Version v;
  v.msf_path = work + "/" + s.model + "-" + s.version + ".msf";
  ::unlink(v.msf_path.c_str());
  auto fd = env->Open(v.msf_path, OpenMode::kReadWriteNew);
  if (!fd) std::abort();
  msf::BuildOptions o;
  o.model = s.model;
  o.version = s.version;
  o.created_unix_ns = 1'700'000'000'000'000'000;
  msf::Builder b(env, *fd, o);
  for (int i = 0; i < s.entries; ++i) {
    if (!b.Add("k" + std::to_string(i), ValueFor(s, i))) std::abort();
  }
  if (s.zero_value_bytes > 0 && !b.Add("zeros", std::string(s.zero_value_bytes, '\0'))) {
    std::abort();
  }
  auto built = b.Finish();
  env->Close(*fd);
  if (!built) std::abort();
  v.bytes = ReadWhole(v.msf_path);
  ::mkdir(volume.c_str(), 0755);
  auto recipe = chunk::ChunkBytes(
      v.bytes, s.model, s.version, built->header_checksum, SmallParams(),
      [&](const chunk::RecipeChunk& c, std::span<const std::byte> data) -> Result<uint32_t> {
        WriteWhole(volume + "/" + chunk::ToHex(c.hash), data);
        return static_cast<uint32_t>(data.size());
      });
  if (!recipe) std::abort();
  v.recipe = std::move(*recipe);
  return v;
}

// A fetch function over <volume>/<hex> files (the test's stand-in for ChunkStore::Get).
inline Status FetchFromDir(const std::string& volume, const chunk::ChunkHash& h,
                           std::span<std::byte> out) {
  std::string path = volume + "/" + chunk::ToHex(h);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(Code::kNotFound, "chunk " + chunk::ToHex(h) + " not on the volume");
  ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(out.size())) return Fail(Code::kCorruption, "short chunk");
  return Ok();
}

// The k-th chunk that is not a hole.
inline const chunk::RecipeChunk& DataChunk(const chunk::Recipe& r, size_t k) {
  for (const auto& c : r.chunks) {
    if (!c.hole && k-- == 0) return c;
  }
  std::abort();
}

inline size_t DataChunks(const chunk::Recipe& r) {
  size_t n = 0;
  for (const auto& c : r.chunks)
    n += c.hole ? 0 : 1;
  return n;
}

inline size_t UniqueDataChunks(const chunk::Recipe& r) {
  std::map<std::string, int> u;
  for (const auto& c : r.chunks) {
    if (!c.hole) u[chunk::ToHex(c.hash)] = 1;
  }
  return u.size();
}

}  // namespace modelswap::cache::testing
