// Helpers built on any Env (env.h), so tests' Envs get them too: path joining, bounded
// whole-file reads (by path or beneath a root), read-only maps beneath a root, atomic writes
// (temp, fsync, rename, fsync of the directory).
#include <unistd.h>

#include <string>
#include <string_view>

#include "common/env.h"

namespace modelswap {

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  std::string out(a);
  if (out.back() != '/') out.push_back('/');
  out.append(b);
  return out;
}

std::string DirName(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

namespace {
Result<std::string> ReadFd(Env* env, int fd, const std::string& path, uint64_t max_bytes) {
  std::string out;
  uint64_t offset = 0;
  std::byte buf[64 * 1024];
  for (;;) {
    auto n = env->PRead(fd, buf, offset);
    if (!n) {
      env->Close(fd);
      return Fail(n.error().Context(path));
    }
    if (*n == 0) break;
    out.append(reinterpret_cast<const char*>(buf), *n);
    offset += *n;
    if (offset > max_bytes) {
      env->Close(fd);
      return Fail(Code::kInvalidArgument,
                  path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  env->Close(fd);
  return out;
}
}  // namespace

Result<std::string> ReadFileToString(Env* env, const std::string& path, uint64_t max_bytes) {
  MS_ASSIGN_OR_RETURN(int fd, env->Open(path, OpenMode::kRead));
  return ReadFd(env, fd, path, max_bytes);
}

Result<std::string> ReadFileBeneath(Env* env, const std::string& root, const std::string& rel,
                                    uint64_t max_bytes) {
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, rel, OpenMode::kRead));
  return ReadFd(env, fd, JoinPath(root, rel), max_bytes);
}

Result<std::unique_ptr<MappedFile>> MapReadOnlyBeneath(Env* env, const std::string& root,
                                                       const std::string& rel) {
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, rel, OpenMode::kRead));
  auto mapped = env->MapFd(fd, JoinPath(root, rel));
  env->Close(fd);
  return mapped;
}

Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data) {
  std::string dir = DirName(path);
  std::string tmp =
      JoinPath(dir, ".tmp-" + path.substr(dir.size() + 1) + "-" +
                        std::to_string(env->NowUnixNanos()) + "-" + std::to_string(::getpid()));
  MS_ASSIGN_OR_RETURN(int fd, env->Open(tmp, OpenMode::kCreateNew));
  Status st = env->PWrite(fd, std::as_bytes(std::span(data)), 0);
  if (st) st = env->Fsync(fd);
  env->Close(fd);
  if (st) st = env->Rename(tmp, path);
  if (!st) {
    (void)env->Remove(tmp);
    return st;
  }
  return env->FsyncDir(dir);
}

}  // namespace modelswap
