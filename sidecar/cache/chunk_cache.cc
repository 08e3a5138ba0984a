// Filling and reading the node's chunk cache (chunk_cache.h).
#include "sidecar/cache/chunk_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/posix_error.h"
#include "sidecar/cache/access_history.h"
#include "sidecar/cache/cache_layout.h"
#include "sidecar/cache/file_ops.h"
#include "sidecar/cache/ofd_lock.h"

namespace modelswap::cache {

ChunkSourceFn ChunkStoreSource(std::shared_ptr<chunk::ChunkStore> store) {
  return [store = std::move(store)](const chunk::RecipeChunk& c, std::span<const std::byte> base,
                                    std::span<std::byte> out) -> Status {
    if (c.delta) return store->GetDelta(c.hash, c.base_hash, base, out);
    return store->Get(c.hash, out);
  };
}

std::string DescribeEntry(const chunk::RecipeChunk& c) {
  std::string s = "chunk " + chunk::ToHex(c.hash);
  if (c.delta) s += " (a delta against " + chunk::ToHex(c.base_hash) + ")";
  return s;
}

chunk::RecipeChunk WholeEntry(const chunk::ChunkHash& hash, uint32_t length) {
  chunk::RecipeChunk c;
  c.hash = hash;
  c.length = length;
  return c;
}

bool ChunkCache::Lookup(const chunk::ChunkHash& hash, std::span<std::byte> out) {
  return ReadCached(hash, out, /*remove_bad=*/false);
}

bool ChunkCache::ReadCached(const chunk::ChunkHash& hash, std::span<std::byte> out,
                            bool remove_bad) {
  std::string path = ChunkPath(dir_, hash);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool good = false;
  auto usage = StatUsageFd(fd, path);
  if (usage && usage->regular && usage->size == out.size()) {
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    good = done == out.size() && chunk::Sha256(out) == hash;
  }
  ::close(fd);
  if (!good) {
    spdlog::warn("cache: chunk {} in the cache fails its check{}", chunk::ToHex(hash),
                 remove_bad ? "; removing it" : "");
    if (remove_bad) (void)env_->Remove(path);
    return false;
  }
  (void)RecordAccess(path, env_->NowUnixNanos(), correlated_period_ns_);
  return true;
}

Result<int> ChunkCache::FetchVerified(const chunk::RecipeChunk& c, std::span<const std::byte> base,
                                      std::span<std::byte> out, const ChunkSourceFn& source) {
  std::string what = DescribeEntry(c);
  std::string last_problem;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    Status st = source(c, base, out);
    if (!st && st.error().code() != Code::kCorruption) return Fail(st.error().Context(what));
    if (st && chunk::Sha256(out) == c.hash) return attempt;
    last_problem = st ? "content does not match its SHA-256" : st.error().message();
    spdlog::warn("cache: {} fetch {} of 2 corrupt: {}", what, attempt, last_problem);
  }
  return Fail(Code::kCorruption,
              what + ": corrupt on both fetches from the volume (" + last_problem + ")");
}

Status ChunkCache::Publish(const chunk::ChunkHash& hash, std::span<const std::byte> bytes) {
  std::string final_path = ChunkPath(dir_, hash);
  std::string temp = ChunkTempPath(dir_, hash, UniqueSuffix(env_));
  MS_RETURN_IF_ERROR(env_->CreateDirs(ChunkShardDir(dir_, hash)));
  MS_ASSIGN_OR_RETURN(int fd, env_->Open(temp, OpenMode::kReadWriteNew));
  Status st = env_->PWrite(fd, bytes, 0);
  if (st) st = InitAccessHistory(fd, temp, env_->NowUnixNanos());
  if (st) st = MakeReadOnly(fd, temp);
  env_->Close(fd);
  // Replacing is right here: we hold the chunk's fill lock, and a file under the final name is
  // one that failed its check a moment ago.
  if (st) st = env_->Rename(temp, final_path);
  if (!st) (void)env_->Remove(temp);
  return st;
}

void ChunkCache::RemoveDeadTemps(const chunk::ChunkHash& hash) {
  // Only fillers holding this chunk's lock write its temps, and we hold it now: any temp left is
  // from a filler that died (its lock went with it).
  std::string shard = ChunkShardDir(dir_, hash);
  auto names = env_->ListDir(shard);
  if (!names) return;
  std::string prefix = chunk::ToHex(hash) + std::string(kTempInfix);
  for (const std::string& name : *names) {
    if (name.starts_with(prefix)) {
      spdlog::info("cache: removing a dead filler's temp {}", name);
      (void)env_->Remove(JoinPath(shard, name));
    }
  }
}

Result<ChunkGet> ChunkCache::Get(const chunk::RecipeChunk& c, std::span<const std::byte> base,
                                 std::span<std::byte> out, const ChunkSourceFn& source) {
  if (base.size() != (c.delta ? c.base_length : 0)) {
    return Fail(Code::kInvalidArgument,
                DescribeEntry(c) + ": given " + std::to_string(base.size()) + " bytes of base");
  }
  if (ReadCached(c.hash, out, /*remove_bad=*/false)) return ChunkGet{ChunkOrigin::kCache, 0};
  MS_ASSIGN_OR_RETURN(OfdLock lock,
                      OfdLock::Acquire(LockFilePath(dir_, LockKind::kChunkFill),
                                       ChunkLockOffset(c.hash), OfdLock::Mode::kExclusive));
  if (ReadCached(c.hash, out, /*remove_bad=*/true)) return ChunkGet{ChunkOrigin::kCache, 0};
  RemoveDeadTemps(c.hash);
  MS_ASSIGN_OR_RETURN(int fetches, FetchVerified(c, base, out, source));
  Status st = Publish(c.hash, out);
  if (!st) return Fail(st.error().Context("caching chunk " + chunk::ToHex(c.hash)));
  return ChunkGet{ChunkOrigin::kFetched, fetches};
}

}  // namespace modelswap::cache
