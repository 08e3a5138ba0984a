// One model's agent loop: watch the manifest, load new versions, publish them in the control
// block, fall back from a version whose file was truncated under it, reclaim superseded versions.
//
// Each model runs its own thread, so a slow load of one model never delays another. The loop
// never touches the model volume itself: every read there (the manifest, the active file's size,
// a load, dropping page cache) runs on the model's VolumeWorker (loader.h), one job at a time,
// and the loop collects the result on a later turn. A read that blocks for ever (a FIFO in a
// file's place, a hung blobfuse mount) therefore stops only that job: the loop keeps the control
// block heartbeat, /v1/status reports the blocked step and for how long (past
// volume_timeout_ns: logged, "volume.blocked", modelswap_agent_volume_blocked), and Stop()
// returns. The loop:
//   tick the control block heartbeat; collect a finished job: the poll's active files' sizes (a
//   file shorter than its mapping, of any layer of a chain, is dropped and the previous version
//   loaded again, where it is still intact), its manifest (missing, torn, bad checksum or older
//   than what we hold: ignored, the reason kept for /v1/status; a known generation with other
//   content: reported as a generation conflict, never loaded), or a load; start the next job (a
//   decided load, else the next poll); reclaim; wait for an inotify event or the poll interval.
//
// Thread safety: Run() on the model's own thread; Stop() and Snapshot() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
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
  // A volume job (a manifest read, a size check, a load) running longer than this is reported
  // as blocked: logged once, and in /v1/status and /metrics until it returns.
  int64_t volume_timeout_ns = 10'000'000'000;
  LoadOptions load;
  // Called on the loop thread after a chunked version became active (the agent asks its cache
  // janitor for an eviction pass; the pass runs elsewhere). May be empty.
  std::function<void()> on_chunked_activated;
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
  size_t layer_count = 1;  // its chain's length (1: a whole version)
};

// A consistent copy of one model's state, for /v1/status and /metrics.
struct ModelStatus {
  std::string model;
  std::string state;  // loading | active | failed
  std::shared_ptr<LoadedVersion> active;
  uint64_t resident_bytes = 0;
  uint64_t swaps = 0, rejections = 0, reclaimed = 0, truncations = 0;
  // Layers mapped and verified by loads that became active, and layers those loads shared with
  // versions already loaded (a delta's base is loaded once, then shared).
  uint64_t layer_loads = 0, layer_shares = 0;
  std::optional<Rejection> last_rejected;
  std::string manifest_error;  // why the last manifest read was ignored ("" if it was fine)
  std::vector<RetiredInfo> retired;
  int live_readers = 0;
  std::vector<uint64_t> held_generations;
  bool inotify = false;
  uint64_t agent_incarnation = 0;
  int64_t next_retry_in_ns = 0;
  uint64_t manifest_errors = 0;  // manifest reads ignored (missing, torn, stale, not a file...)
  // A manifest naming a generation this agent knew with other content (a publisher that
  // repeated a generation): never loaded, always reported. "" when none was seen.
  std::string generation_conflict;
  uint64_t generation_conflicts = 0;
  // Why the active version is not the newest one that was activated ("" when it is): e.g. the
  // newest one's file was truncated and the previous one serves again.
  std::string degraded;
  // The volume job running now ("" when idle), for how long, and whether past the timeout.
  std::string volume_step;
  double volume_seconds = 0;
  bool volume_blocked = false;
};

class ModelAgent {
 public:
  [[nodiscard]] static Result<std::unique_ptr<ModelAgent>> Create(Env* env, std::string model,
                                                                  const ModelAgentConfig& config);
  ~ModelAgent();
  void Run();
  void Stop();
  ModelStatus Snapshot();
  const std::string& model() const { return model_; }

 private:
  struct PollOutcome;
  struct LoadJob;
  struct LoadOutcome;

  ModelAgent(Env* env, std::string model, ModelAgentConfig config,
             std::unique_ptr<ControlBlockWriter> ctl);
  void Tick(bool poll_due);
  void StartPoll();
  void StartLoad(LoadJob job);
  void ApplyPoll(PollOutcome& p);
  void ApplyManifest(const Result<Manifest>& m);
  bool GenerationConflict(const Manifest& m);
  void ApplyLoad(LoadOutcome& l);
  void DropTruncated(std::shared_ptr<LoadedVersion> v, std::shared_ptr<LoadedVersion> layer,
                     uint64_t size);
  void Activate(std::shared_ptr<LoadedVersion> v, bool fallback);
  void Reject(const Manifest& m, const Error& e);
  void Reclaim();
  void ReportBlocked();
  int64_t NextWaitNs();

  Env* const env_;
  const std::string model_;
  const ModelAgentConfig config_;
  std::unique_ptr<ControlBlockWriter> ctl_;
  Watcher watcher_;
  std::atomic<bool> stop_{false};  // relaxed: checked each loop turn; Wake() ends the wait

  // Loop thread only.
  std::shared_ptr<PollOutcome> poll_;  // the running or finished poll job's result
  std::shared_ptr<LoadOutcome> load_;  // the running or finished load job's result
  std::vector<LoadJob> next_loads_;    // decided loads, first to start first (fallbacks queue)
  // Reclaimed versions; the next poll drops their layers that no retained version uses.
  std::vector<std::shared_ptr<LoadedVersion>> to_drop_;
  std::vector<Manifest> history_;  // activated manifests, newest last (fallback candidates)
  std::vector<std::pair<uint64_t, std::string>> known_;  // generation -> identity, last seen
  int64_t logged_blocked_since_ = 0;

  // Written by the loop thread under mu_; read by Snapshot() under mu_.
  std::mutex mu_;
  std::shared_ptr<LoadedVersion> active_;
  std::vector<std::shared_ptr<LoadedVersion>> retired_;
  ModelStatus status_;
  uint64_t highest_generation_ = 0;  // newest ever activated: older manifests are stale
  uint64_t failed_generation_ = 0;
  int64_t retry_at_ns_ = 0, backoff_ns_ = 0;

  // Last member: destroyed first, so its on_done never wakes a destroyed watcher.
  std::unique_ptr<VolumeWorker> worker_;
};

}  // namespace modelswap::agent
