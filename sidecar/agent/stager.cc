// Parallel chunked copy into the stage directory.
#include "sidecar/agent/stager.h"

#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

namespace modelswap::agent {
namespace {

// Copies chunks claimed from `next` until none are left or one fails.
Status CopyChunks(Env* env, int in, int out, uint64_t size, uint64_t chunk,
                  std::atomic<uint64_t>& next, std::atomic<bool>& failed) {
  std::vector<std::byte> buf(chunk);
  // Relaxed: `next` only hands out distinct chunk numbers; the joins publish the data.
  for (uint64_t i = next.fetch_add(1, std::memory_order_relaxed); i * chunk < size;
       i = next.fetch_add(1, std::memory_order_relaxed)) {
    if (failed.load(std::memory_order_relaxed)) return Ok();  // another worker reports
    uint64_t off = i * chunk, len = std::min(chunk, size - off), done = 0;
    while (done < len) {
      auto n = env->PRead(in, std::span(buf).subspan(done, len - done), off + done);
      if (!n) return Fail(n.error());
      if (*n == 0) {
        return Fail(Code::kCorruption, "stage: source ended at " + std::to_string(off + done) +
                                           " bytes, manifest says " + std::to_string(size));
      }
      done += *n;
    }
    MS_RETURN_IF_ERROR(env->PWrite(out, std::span(buf).first(len), off));
  }
  return Ok();
}

Status CopyParallel(Env* env, const StageRequest& req, const std::string& tmp) {
  MS_ASSIGN_OR_RETURN(int in, env->OpenBeneath(req.root, req.source_rel, OpenMode::kRead));
  auto out = env->Open(tmp, OpenMode::kCreateNew);
  if (!out) {
    env->Close(in);
    return Fail(out.error());
  }
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  int n = std::max(1, req.threads);
  std::vector<Status> results(static_cast<size_t>(n));
  std::vector<std::thread> workers;
  for (int i = 0; i < n; ++i) {
    workers.emplace_back([&, i] {
      results[static_cast<size_t>(i)] =
          CopyChunks(env, in, *out, req.expected_bytes, req.chunk_bytes, next, failed);
      if (!results[static_cast<size_t>(i)]) failed.store(true, std::memory_order_relaxed);
    });
  }
  for (auto& w : workers)
    w.join();
  Status st = Ok();
  for (auto& r : results) {
    if (!r && st) st = r;
  }
  // The source must end where the manifest says (a longer file is not the published one).
  if (st) {
    std::byte extra[1];
    auto more = env->PRead(in, extra, req.expected_bytes);
    if (!more)
      st = Fail(more.error());
    else if (*more != 0)
      st = Fail(Code::kCorruption, "stage: source is longer than the manifest says");
  }
  env->Close(in);
  env->Close(*out);
  return st;
}

}  // namespace

std::string StagedPath(const std::string& stage_dir, const std::string& model,
                       const std::string& version) {
  return JoinPath(JoinPath(stage_dir, model), version + ".msf");
}

Result<std::string> StageFile(Env* env, const StageRequest& req) {
  std::string dest = StagedPath(req.stage_dir, req.model, req.version);
  if (auto info = env->Stat(dest); info && info->size == req.expected_bytes) return dest;
  MS_RETURN_IF_ERROR(env->CreateDirs(DirName(dest)));
  std::string tmp =
      JoinPath(DirName(dest), ".tmp-" + req.version + ".msf-" + std::to_string(::getpid()));
  (void)env->Remove(tmp);  // left by a crashed agent with our pid: ours to replace
  Status st = CopyParallel(env, req, tmp);
  if (st) st = env->Rename(tmp, dest);
  if (!st) {
    (void)env->Remove(tmp);
    return Fail(st.error().Context("stage " + JoinPath(req.root, req.source_rel)));
  }
  return dest;
}

}  // namespace modelswap::agent
