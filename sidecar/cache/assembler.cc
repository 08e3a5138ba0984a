// Assembling a version once per node (assembler.h).
#include "sidecar/cache/assembler.h"

#include <spdlog/spdlog.h>

#include <optional>

#include "sidecar/cache/access_history.h"
#include "sidecar/cache/assembly_plan.h"
#include "sidecar/cache/cache_layout.h"
#include "sidecar/cache/durability.h"
#include "sidecar/cache/eviction.h"
#include "sidecar/cache/file_ops.h"
#include "sidecar/cache/ofd_lock.h"
#include "sidecar/cache/version_builder.h"
#include "sidecar/msf/reader.h"

namespace modelswap::cache {
namespace {

struct Names {
  std::string dir;     // <cache>/versions/<model>
  std::string file;    // <version>-<16 hex>.msf
  std::string path;    // dir/file
  std::string recipe;  // dir/<version>-<16 hex>.recipe
};

Names NamesFor(const CacheOptions& o, const chunk::Recipe& r) {
  Names n;
  n.dir = ModelCacheDir(o.dir, r.model);
  n.file = AssembledFileName(r.version, r.msf_checksum);
  n.path = JoinPath(n.dir, n.file);
  n.recipe = JoinPath(n.dir, RecipeFileNameFor(r.version, r.msf_checksum));
  return n;
}

// The O(1) header check of an already assembled file: it is the version the recipe names.
Status CheckHeader(Env* env, const Hold& hold, const chunk::Recipe& r) {
  MS_ASSIGN_OR_RETURN(auto mapping, env->MapFd(hold.fd(), hold.path()));
  MS_ASSIGN_OR_RETURN(msf::Header h, msf::ParseHeader(mapping->bytes()));
  if (h.header_checksum != r.msf_checksum || h.model != r.model || h.version != r.version) {
    return Fail(Code::kCorruption, hold.path() + ": header is not " + r.model + "/" + r.version);
  }
  return Ok();
}

enum class Existing { kMissing, kDamaged, kOtherBoot };

// A file marked by another boot (durability.h), holding the build lock: verified in full again,
// then synced and unmarked; false (and a warning) if it fails the check.
Result<bool> Reverify(Env* env, const Hold& hold, const chunk::Recipe& r) {
  spdlog::info("cache: {} was assembled during another boot; verifying it again", hold.path());
  if (Status st = VerifyAssembled(env, hold.path(), r); !st) {
    spdlog::warn("cache: {}; assembling it again", st.error().message());
    return false;
  }
  // Sound either way; an unremoved mark only means the next user verifies it again.
  if (Status st = MarkDurable(env, hold.fd(), hold.path()); !st) {
    spdlog::warn("cache: verified {} but could not mark it synced: {}", hold.path(),
                 st.error().ToString());
  }
  return true;
}

// Holds the final file if it is there and sound. A file marked by another boot is used only
// under the build lock (`build_locked`), after Reverify; without the lock: kOtherBoot.
Result<std::optional<Hold>> UseExisting(Env* env, const CacheOptions& o, const chunk::Recipe& r,
                                        const Names& n, bool build_locked, Existing* why_not,
                                        bool* reverified) {
  MS_ASSIGN_OR_RETURN(OfdLock lock, LockHold(o.dir, r.model, n.file));
  auto hold = HoldLocked(std::move(lock), n.path);
  if (!hold) {
    if (hold.error().code() != Code::kNotFound) return Fail(hold.error());
    *why_not = Existing::kMissing;
    return std::optional<Hold>();
  }
  if (Status st = CheckHeader(env, *hold, r); !st) {
    spdlog::warn("cache: {}; assembling it again", st.error().message());
    *why_not = Existing::kDamaged;
    return std::optional<Hold>();
  }
  MS_ASSIGN_OR_RETURN(bool other_boot, MarkedByAnotherBoot(env, hold->fd(), n.path));
  if (other_boot) {
    *why_not = build_locked ? Existing::kDamaged : Existing::kOtherBoot;
    if (!build_locked) return std::optional<Hold>();
    MS_ASSIGN_OR_RETURN(bool sound, Reverify(env, *hold, r));
    if (!sound) return std::optional<Hold>();
    *reverified = true;
  }
  (void)RecordAccess(n.path, env->NowUnixNanos(), o.correlated_period_ns);
  return std::optional<Hold>(std::move(*hold));
}

// Holding the build lock: every temp of this version (and its recipe) is a dead builder's.
void RemoveDeadBuilderTemps(Env* env, const Names& n) {
  auto names = env->ListDir(n.dir);
  if (!names) return;
  std::string recipe_file = n.recipe.substr(n.dir.size() + 1);
  for (const std::string& name : *names) {
    auto e = ParseVersionEntry(name);
    if (e && e->kind == VersionEntryName::Kind::kTemp &&
        (e->final_name == n.file || e->final_name == recipe_file)) {
      spdlog::info("cache: removing a dead builder's temp {}", name);
      (void)env->Remove(JoinPath(n.dir, name));
    }
  }
}

Status WriteRecipeBeside(Env* env, const chunk::Recipe& r, const std::string& path) {
  std::string temp = TempNameFor(path, UniqueSuffix(env));
  std::string bytes = chunk::EncodeRecipe(r);
  MS_ASSIGN_OR_RETURN(int fd, env->Open(temp, OpenMode::kReadWriteNew));
  Status st = env->PWrite(fd, std::as_bytes(std::span(bytes)), 0);
  if (st) st = MakeReadOnly(fd, temp);
  env->Close(fd);
  // Replacing is fine: we hold the build lock, and an existing one is an orphan of a dead builder.
  if (st) st = env->Rename(temp, path);
  if (!st) (void)env->Remove(temp);
  return st;
}

// Renames the verified temp into place; returns the hold taken before the rename.
Result<Hold> Publish(Env* env, const CacheOptions& o, const chunk::Recipe& r, const Names& n,
                     const std::string& temp) {
  MS_RETURN_IF_ERROR(WriteRecipeBeside(env, r, n.recipe));
  MS_ASSIGN_OR_RETURN(OfdLock lock, LockHold(o.dir, r.model, n.file));
  MS_RETURN_IF_ERROR(env->RenameNoReplace(temp, n.path));
  MS_RETURN_IF_ERROR(env->FsyncDir(n.dir));
  return HoldLocked(std::move(lock), n.path);
}

// One attempt: the temp filled (version_builder.h), then verified in full. *check_failed: the
// fill succeeded and the .msf check did not, the one failure a rebuild without a previous version
// can cure (every chunk and delta base is checked against its SHA-256 as it is read, the ranges
// copied from the previous version only by this check).
Status BuildOnce(Env* env, const CacheOptions& o, const chunk::Recipe& r,
                 const ChunkSourceFn& fetch, const ProgressFn& progress, BaseVersion* base,
                 const std::string& temp, AssembleStats* stats, bool* check_failed) {
  *check_failed = false;
  MS_RETURN_IF_ERROR(BuildVersionFile(env, o, r, fetch, progress, base, temp, stats));
  if (progress) progress(AssembleProgress{"verify", 0, r.file_bytes});
  int64_t t = env->NowMonotonicNanos();
  Status st = VerifyAssembled(env, temp, r);
  stats->verify_seconds = static_cast<double>(env->NowMonotonicNanos() - t) / 1e9;
  *check_failed = !st;
  return st;
}

// Builds under a temp name with the retries assembler.h describes; returns the verified temp.
Result<std::string> BuildWithRetries(Env* env, const CacheOptions& o, const chunk::Recipe& r,
                                     const ChunkSourceFn& fetch, const ProgressFn& progress,
                                     const Names& n, AssembleStats* stats) {
  bool use_base = true;
  int evictions = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    int64_t t = env->NowMonotonicNanos();
    std::optional<BaseVersion> base;
    if (use_base) base = ChooseBase(env, o.dir, r, n.file);
    double choose_seconds = static_cast<double>(env->NowMonotonicNanos() - t) / 1e9;
    std::string temp = TempNameFor(n.path, UniqueSuffix(env));
    bool check_failed = false;
    Status st =
        BuildOnce(env, o, r, fetch, progress, base ? &*base : nullptr, temp, stats, &check_failed);
    stats->plan_seconds += choose_seconds;
    stats->evictions_for_space = evictions;
    if (st) return temp;
    (void)env->Remove(temp);
    const Error& e = st.error();
    if (IsNoSpace(e) && evictions == 0) {
      ++evictions;
      spdlog::warn("cache: out of space assembling {}/{}; evicting once: {}", r.model, r.version,
                   e.message());
      auto ev = Evict(env, o, EvictRequest{true, r.file_bytes});
      if (!ev) spdlog::warn("cache: eviction failed: {}", ev.error().ToString());
      continue;
    }
    if (IsNoSpace(e)) {
      return Fail(e.Context("cache " + o.dir + " is full even after evicting"));
    }
    if (check_failed && stats->chunks_from_previous > 0 && use_base) {
      spdlog::warn(
          "cache: {} failed its check after copying from {}; building it without a "
          "previous version: {}",
          r.version, stats->previous_version, e.message());
      use_base = false;
      continue;
    }
    return Fail(e);
  }
  return Fail(Code::kInternal, "assembling " + r.model + "/" + r.version + ": out of attempts");
}

}  // namespace

Result<Assembled> Assemble(Env* env, const CacheOptions& o, const chunk::Recipe& r,
                           const ChunkSourceFn& fetch, const ProgressFn& progress) {
  MS_RETURN_IF_ERROR(CheckRecipe(r));
  MS_RETURN_IF_ERROR(EnsureLayout(env, o.dir));
  Names n = NamesFor(o, r);
  MS_RETURN_IF_ERROR(env->CreateDirs(n.dir));

  Assembled out;
  out.path = n.path;
  out.stats.chunks_total = r.chunks.size();
  out.stats.bytes_total = r.file_bytes;
  Existing why_not = Existing::kMissing;
  bool reverified = false;
  MS_ASSIGN_OR_RETURN(std::optional<Hold> existing,
                      UseExisting(env, o, r, n, false, &why_not, &reverified));
  if (existing) {
    out.hold = std::move(*existing);
    out.stats.already_assembled = true;
    return out;
  }

  MS_ASSIGN_OR_RETURN(OfdLock build, OfdLock::Acquire(LockFilePath(o.dir, LockKind::kVersionBuild),
                                                      VersionLockOffset(r.model, n.file),
                                                      OfdLock::Mode::kExclusive));
  MS_ASSIGN_OR_RETURN(existing, UseExisting(env, o, r, n, true, &why_not, &reverified));
  if (existing) {
    out.hold = std::move(*existing);
    out.stats.already_assembled = true;
    out.stats.reverified = reverified;
    // Not waiting if we took the lock only to verify another boot's file.
    out.stats.waited_for_builder = !reverified;
    return out;
  }
  if (why_not == Existing::kDamaged) {
    // Holders of the damaged file keep their inode; new users get the rebuilt one.
    MS_RETURN_IF_ERROR(env->Remove(n.path));
  }
  RemoveDeadBuilderTemps(env, n);
  MS_ASSIGN_OR_RETURN(std::string temp,
                      BuildWithRetries(env, o, r, fetch, progress, n, &out.stats));
  int64_t t = env->NowMonotonicNanos();
  auto hold = Publish(env, o, r, n, temp);
  out.stats.publish_seconds = static_cast<double>(env->NowMonotonicNanos() - t) / 1e9;
  if (!hold) {
    (void)env->Remove(temp);
    return Fail(hold.error().Context("publishing " + n.path));
  }
  out.hold = std::move(*hold);
  build.Release();
  spdlog::info("cache: assembled {}: {} chunks, {} fetched, {} from cache, {} from {}, {} holes",
               n.path, out.stats.chunks_total, out.stats.chunks_fetched,
               out.stats.chunks_from_cache, out.stats.chunks_from_previous,
               out.stats.previous_version.empty() ? "-" : out.stats.previous_version,
               out.stats.holes);
  if (o.evict_after_assemble && o.max_bytes > 0) {
    auto ev = Evict(env, o);
    if (!ev) spdlog::warn("cache: eviction after assembling failed: {}", ev.error().ToString());
  }
  return out;
}

}  // namespace modelswap::cache
