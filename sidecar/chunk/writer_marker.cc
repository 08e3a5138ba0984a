// Writer and GC markers (writer_marker.h): create, refresh, remove, list.
#include "sidecar/chunk/writer_marker.h"

#include <unistd.h>

#include "common/names.h"

namespace modelswap::chunk {
namespace {

// Writes the time now into root/rel (created or truncated), fsynced.
Status WriteStamp(Env* env, const std::string& root, const std::string& rel, OpenMode mode) {
  auto fd = env->OpenBeneath(root, rel, mode);
  if (!fd && fd.error().code() == Code::kNotFound) {
    // The markers folder is missing (a symlink in the way is kPermissionDenied instead).
    MS_RETURN_IF_ERROR(env->CreateDirs(JoinPath(root, DirName(rel))));
    fd = env->OpenBeneath(root, rel, mode);
  }
  if (!fd) return Fail(fd.error());
  std::string stamp = std::to_string(env->NowUnixNanos()) + "\n";
  Status st = env->PWrite(*fd, std::as_bytes(std::span(stamp)), 0);
  if (st) st = env->Fsync(*fd);
  env->Close(*fd);
  MS_RETURN_IF_ERROR(st);
  return env->FsyncDir(JoinPath(root, DirName(rel)));
}

std::string UniqueSuffix(Env* env) {
  return std::to_string(::getpid()) + "-" + std::to_string(env->NowUnixNanos());
}

}  // namespace

Result<std::string> CreateWriterMarker(Env* env, const std::string& root, std::string_view model,
                                       std::string_view version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  std::string rel = std::string(kWritersDir) + "/" + std::string(model) + "." +
                    std::string(version) + "." + UniqueSuffix(env);
  MS_RETURN_IF_ERROR(WriteStamp(env, root, rel, OpenMode::kCreateNew));
  // Only now look for a GC (see the header: mine first, then theirs).
  auto gcs = ListMarkers(env, root, kGcDir);
  const int64_t now = env->NowUnixNanos();
  if (!gcs) {
    (void)RemoveMarker(env, root, rel);
    return Fail(gcs.error().Context("looking for a running chunk GC"));
  }
  for (const MarkerInfo& gc : *gcs) {
    if (gc.mtime_ns > now - kGcMarkerMaxAgeNs) {
      (void)RemoveMarker(env, root, rel);
      return Fail(Code::kUnavailable,
                  "chunk GC running (" + gc.rel + "); retry the chunked write later");
    }
  }
  return rel;
}

Result<std::string> CreateGcMarker(Env* env, const std::string& root) {
  std::string rel = std::string(kGcDir) + "/" + UniqueSuffix(env);
  MS_RETURN_IF_ERROR(WriteStamp(env, root, rel, OpenMode::kCreateNew));
  return rel;
}

Status RefreshMarker(Env* env, const std::string& root, const std::string& rel) {
  return WriteStamp(env, root, rel, OpenMode::kTruncate);
}

Status RemoveMarker(Env* env, const std::string& root, const std::string& rel) {
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, rel, OpenMode::kRead));
  env->Close(fd);
  return env->Remove(JoinPath(root, rel));
}

Result<std::vector<MarkerInfo>> ListMarkers(Env* env, const std::string& root,
                                            const std::string& dir) {
  std::vector<MarkerInfo> out;
  auto names = env->ListDir(JoinPath(root, dir));
  if (!names && names.error().code() == Code::kNotFound) return out;
  if (!names) return Fail(names.error());
  for (const std::string& name : *names) {
    auto info = env->Stat(JoinPath(JoinPath(root, dir), name));
    if (!info && info.error().code() == Code::kNotFound) continue;  // removed meanwhile
    if (!info) return Fail(info.error());
    out.push_back({dir + "/" + name, info->mtime_ns});
  }
  return out;
}

}  // namespace modelswap::chunk
