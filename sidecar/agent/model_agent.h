// One model's agent loop: watch the manifest, load new versions, publish them in the control
// block, drop a version whose file was truncated under it, reclaim superseded versions.
//
// Each model runs its own thread, so a slow load of one model never delays another. The loop:
//   tick the control block heartbeat; check the active file still has its mapped size;
//   read the manifest (missing, torn, bad checksum or older than what we hold: ignored, and the
//   reason kept for /v1/status); load a newer generation (a failed one is retried with
//   exponential backoff, a newer manifest is tried at once); reclaim; wait for an inotify event
//   or the poll interval.
//
// Thread safety: Run() on the model's own thread; Stop() and Snapshot() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/agent/control_block_writer.h"
#include "sidecar/agent/loader.h"
#include "sidecar/agent/watcher.h"

namespace modelswap::agent {

struct ModelAgentConfig {
  std::string root, shm_dir;
  int64_t poll_interval_ns = 1'000'000'000;
  int64_t grace_ns = 300'000'000'000;
  int64_t heartbeat_interval_ns = 1'000'000'000;
  int64_t reader_timeout_ns = 5'000'000'000;
  int64_t retry_initial_ns = 1'000'000'000;
  int64_t retry_max_ns = 60'000'000'000;
  bool use_inotify = true;
  LoadOptions load;
};

struct Rejection {
  std::string version;
  uint64_t generation = 0;
  std::string reason;
  int64_t at_unix_ns = 0;
};

struct RetiredInfo {
  std::string version;
  uint64_t generation = 0;
  int holders = 0;
  double retired_seconds = 0;
};

// A consistent copy of one model's state, for /v1/status and /metrics.
struct ModelStatus {
  std::string model;
  std::string state;  // loading | active | failed
  std::shared_ptr<LoadedVersion> active;
  uint64_t resident_bytes = 0;
  uint64_t swaps = 0, rejections = 0, reclaimed = 0, truncations = 0;
  std::optional<Rejection> last_rejected;
  std::string manifest_error;  // why the last manifest read was ignored ("" if it was fine)
  std::vector<RetiredInfo> retired;
  int live_readers = 0;
  std::vector<uint64_t> held_generations;
  bool inotify = false;
  uint64_t agent_incarnation = 0;
  int64_t next_retry_in_ns = 0;
};

class ModelAgent {
 public:
  [[nodiscard]] static Result<std::unique_ptr<ModelAgent>> Create(Env* env, std::string model,
                                                                  const ModelAgentConfig& config);
  void Run();
  void Stop();
  ModelStatus Snapshot();
  const std::string& model() const { return model_; }

 private:
  ModelAgent(Env* env, std::string model, ModelAgentConfig config,
             std::unique_ptr<ControlBlockWriter> ctl);
  void Tick();
  void CheckActive();
  void MaybeLoad();
  void Activate(std::shared_ptr<LoadedVersion> v);
  void Reject(const Manifest& m, const Error& e);
  void Reclaim();
  int64_t NextWaitNs();

  Env* const env_;
  const std::string model_;
  const ModelAgentConfig config_;
  std::unique_ptr<ControlBlockWriter> ctl_;
  Watcher watcher_;
  std::atomic<bool> stop_{false};  // relaxed: checked each loop turn; Wake() ends the wait

  // Written by the loop thread under mu_; read by Snapshot() under mu_.
  std::mutex mu_;
  std::shared_ptr<LoadedVersion> active_;
  std::vector<std::shared_ptr<LoadedVersion>> retired_;
  ModelStatus status_;
  uint64_t highest_generation_ = 0;  // newest ever activated: older manifests are stale
  uint64_t failed_generation_ = 0;
  int64_t retry_at_ns_ = 0, backoff_ns_ = 0;
};

}  // namespace modelswap::agent
