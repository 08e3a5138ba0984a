// The node cache's names and lock offsets (cache_layout.h).
#include "sidecar/cache/cache_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "common/checksum.h"
#include "common/names.h"
#include "common/posix_error.h"

namespace modelswap::cache {
namespace {

constexpr std::string_view kAssembledSuffix = ".msf";
constexpr std::string_view kRecipeSuffix = ".recipe";

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !s.empty();
}

// "<version>-<16 hex><suffix>" -> version, checksum.
std::optional<std::pair<std::string, uint64_t>> SplitFinal(std::string_view name,
                                                           std::string_view suffix) {
  if (!name.ends_with(suffix)) return std::nullopt;
  name.remove_suffix(suffix.size());
  if (name.size() < 18 || name[name.size() - 17] != '-') return std::nullopt;
  std::string_view hex = name.substr(name.size() - 16);
  std::string_view version = name.substr(0, name.size() - 17);
  if (!IsLowerHex(hex) || !ValidateVersionName(version)) return std::nullopt;
  return std::make_pair(std::string(version), std::stoull(std::string(hex), nullptr, 16));
}

}  // namespace

std::string LockFilePath(std::string_view cache_dir, LockKind kind) {
  const char* name = "evict";
  switch (kind) {
    case LockKind::kChunkFill:
      name = "chunks";
      break;
    case LockKind::kVersionBuild:
      name = "build";
      break;
    case LockKind::kVersionHold:
      name = "hold";
      break;
    case LockKind::kEvict:
      name = "evict";
      break;
  }
  return JoinPath(JoinPath(cache_dir, "locks"), name);
}

uint64_t ChunkLockOffset(const chunk::ChunkHash& hash) {
  uint64_t v = 0;
  for (int i = 0; i < 7; ++i)
    v = (v << 8) | hash.bytes[static_cast<size_t>(i)];
  return v;
}

uint64_t VersionLockOffset(std::string_view model, std::string_view file_name) {
  std::string key = std::string(model) + "/" + std::string(file_name);
  return Xxh3(key) >> 8;
}

std::string ChunksDir(std::string_view cache_dir) {
  return JoinPath(cache_dir, "chunks");
}

std::string ChunkShardDir(std::string_view cache_dir, const chunk::ChunkHash& hash) {
  return JoinPath(ChunksDir(cache_dir), chunk::ToHex(hash).substr(0, 2));
}

std::string ChunkPath(std::string_view cache_dir, const chunk::ChunkHash& hash) {
  return JoinPath(ChunkShardDir(cache_dir, hash), chunk::ToHex(hash));
}

std::string ChunkTempPath(std::string_view cache_dir, const chunk::ChunkHash& hash,
                          int64_t unique_ns) {
  return TempNameFor(ChunkPath(cache_dir, hash), unique_ns);
}

std::string VersionsDir(std::string_view cache_dir) {
  return JoinPath(cache_dir, "versions");
}

std::string ModelCacheDir(std::string_view cache_dir, std::string_view model) {
  return JoinPath(VersionsDir(cache_dir), model);
}

std::string ChecksumHex(uint64_t checksum) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(checksum));
  return buf;
}

std::string AssembledFileName(std::string_view version, uint64_t checksum) {
  return std::string(version) + "-" + ChecksumHex(checksum) + std::string(kAssembledSuffix);
}

std::string RecipeFileNameFor(std::string_view version, uint64_t checksum) {
  return std::string(version) + "-" + ChecksumHex(checksum) + std::string(kRecipeSuffix);
}

std::string TempNameFor(std::string_view final_name, int64_t unique_ns) {
  return std::string(final_name) + std::string(kTempInfix) + std::to_string(::getpid()) + "-" +
         std::to_string(unique_ns);
}

std::optional<VersionEntryName> ParseVersionEntry(std::string_view name) {
  VersionEntryName out;
  std::string_view final_part = name;
  size_t tmp = name.rfind(kTempInfix);
  if (tmp != std::string_view::npos && !name.ends_with(kAssembledSuffix) &&
      !name.ends_with(kRecipeSuffix)) {
    // "<final>.tmp-<pid>-<ns>": digits and one '-' after the infix.
    std::string_view tail = name.substr(tmp + kTempInfix.size());
    size_t dash = tail.find('-');
    if (dash == std::string_view::npos || dash == 0 || dash + 1 == tail.size()) return std::nullopt;
    for (char c : tail) {
      if (c != '-' && (c < '0' || c > '9')) return std::nullopt;
    }
    final_part = name.substr(0, tmp);
    out.kind = VersionEntryName::Kind::kTemp;
  }
  if (auto a = SplitFinal(final_part, kAssembledSuffix)) {
    if (out.kind != VersionEntryName::Kind::kTemp) out.kind = VersionEntryName::Kind::kAssembled;
    out.version = a->first;
    out.checksum = a->second;
  } else if (auto r = SplitFinal(final_part, kRecipeSuffix)) {
    if (out.kind != VersionEntryName::Kind::kTemp) out.kind = VersionEntryName::Kind::kRecipe;
    out.version = r->first;
    out.checksum = r->second;
  } else {
    return std::nullopt;
  }
  out.final_name = std::string(final_part);
  return out;
}

std::optional<ChunkEntryName> ParseChunkEntry(std::string_view name) {
  ChunkEntryName out;
  if (name.size() > 64) {
    if (name.substr(64, kTempInfix.size()) != kTempInfix) return std::nullopt;
    out.temp = true;
  } else if (name.size() != 64) {
    return std::nullopt;
  }
  std::string_view hex = name.substr(0, 64);
  if (!IsLowerHex(hex)) return std::nullopt;
  auto hash = chunk::ParseChunkHash(hex);
  if (!hash) return std::nullopt;
  out.hash = *hash;
  return out;
}

Status ValidateNames(std::string_view model, std::string_view version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  return ValidateVersionName(version);
}

Status EnsureLayout(Env* env, const std::string& cache_dir) {
  for (const char* sub : {"chunks", "versions", "locks"}) {
    MS_RETURN_IF_ERROR(env->CreateDirs(JoinPath(cache_dir, sub)));
  }
  for (LockKind kind :
       {LockKind::kChunkFill, LockKind::kVersionBuild, LockKind::kVersionHold, LockKind::kEvict}) {
    std::string path = LockFilePath(cache_dir, kind);
    // O_CREAT without O_EXCL: racing creators all end up with the same (empty) file.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      // A read-only view of the cache (an app container) can still take shared locks.
      if ((errno == EROFS || errno == EACCES) && ::access(path.c_str(), R_OK) == 0) continue;
      return Fail(ErrnoError("open", path));
    }
    ::close(fd);
  }
  return Ok();
}

int64_t UniqueSuffix(Env* env) {
  // relaxed: only uniqueness within this process matters, not ordering with other memory.
  static std::atomic<int64_t> counter{0};
  return env->NowUnixNanos() + counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace modelswap::cache
