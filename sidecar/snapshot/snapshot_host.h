// The snapshot host: the agent's part of "app state that survives SIGKILL".
//
// Every interval, the host looks at each region in `<shm-dir>/regions/`, and for each one whose
// committed generation moved since its last durable snapshot it pins that generation and writes
// `<snapshot-dir>/<region>/<generation>.snap` (snapshot_writer.h), then prunes all but the newest
// `keep` snapshots (and the older files their delta chains need). Idle regions cost one atomic
// load per pass. The app never waits for any of this.
//
// Full or delta: after the first full snapshot of a region (per host process), the next ones are
// deltas of the previous one holding only the blocks committed since, until the chain has
// kMaxDeltas deltas or its deltas store half as much as its full snapshot; then a full one
// starts a new chain. So a lightly used region writes little, and a restore reads at most about
// 1.5 times the state.
// At pod start, RestoreAll() recreates every region that has snapshots but no live content from
// its newest valid snapshot (falling back to older ones, with a log line and a counter).
//
// Lifecycle (the agent's): construct; RestoreAll() before reporting ready (apps start after the
// agent's readiness); Start(); Stats()/StatsJson() for /v1/status at any time;
// RegisterMetrics() once for /metrics; Stop() at shutdown (runs one last pass, so commits made
// before the apps exited are flushed).
//
// Not guaranteed: a snapshot directory shared by two hosts (two pods with the same PVC path) is
// not detected; give each pod its own directory.
//
// Thread safety: Start/Stop/RestoreAll/RunOnce from one controlling thread (RunOnce not while
// started); Stats/StatsJson from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/client/region/region_view.h"
#include "sidecar/snapshot/snapshot_stats.h"
#include "sidecar/snapshot/snapshot_writer.h"

namespace prometheus {
class Registry;
}

namespace modelswap::snapshot {

struct SnapshotHostOptions {
  std::string shm_dir;       // where apps' regions live (`<shm-dir>/regions/`)
  std::string snapshot_dir;  // durable storage; created if missing
  int64_t interval_ms = 1000;
  int keep = 3;  // snapshots kept per region, >= 1 (>= 2 to survive a corrupt newest one)
  // Called (on the host's thread) after each snapshot is durable: for tests and logs.
  std::function<void(const std::string& region, uint64_t generation)> on_durable;
};

class SnapshotHost {
 public:
  // kInvalidArgument naming the bad option.
  [[nodiscard]] static Status ValidateOptions(const SnapshotHostOptions& options);

  SnapshotHost(Env* env, SnapshotHostOptions options);
  ~SnapshotHost();  // Stop()
  SnapshotHost(const SnapshotHost&) = delete;
  SnapshotHost& operator=(const SnapshotHost&) = delete;

  // Restores every region of the snapshot dir that has no live region in the shm dir. Tries all
  // regions; fails (kCorruption or the I/O error) naming every region it could not restore.
  [[nodiscard]] Status RestoreAll();
  // Starts the background pass every interval_ms.
  [[nodiscard]] Status Start();
  // Stops the background thread, then runs one final pass. Idempotent.
  void Stop();
  // One pass over all regions (what the thread does each interval). Fails naming the regions
  // whose snapshot failed; the others are still done.
  [[nodiscard]] Status RunOnce();

  std::vector<RegionSnapshotStats> Stats() const;
  nlohmann::json StatsJson() const { return StatsToJson(Stats()); }
  // Exports the stats as Prometheus metrics, updated every pass. Call once, before Start().
  void RegisterMetrics(prometheus::Registry& registry);

 private:
  // The newest snapshot this host wrote for a region, which the next one may be a delta of.
  struct ChainTip {
    uint64_t generation = 0;
    uint64_t data_checksum = 0;
    uint64_t deltas = 0;       // deltas since the chain's full snapshot
    uint64_t delta_bytes = 0;  // bytes they store
    uint64_t full_bytes = 0;   // bytes the full snapshot stores
  };
  struct RegionState {
    std::optional<RegionView> view;
    bool dir_checked = false;  // snapshot dir created, leftovers removed, lineage checked
    std::optional<ChainTip> tip;
    RegionSnapshotStats stats;
  };

  Status Discover();
  Status Adopt(const std::string& name, RegionState& state);
  Status SnapshotRegion(RegionState& state);
  Status PrepareDir(const std::string& name, RegionState& state);
  std::optional<DeltaBase> NextBase(const RegionState& state) const;
  void Prune(const std::string& name, uint64_t just_written);
  void Publish(const RegionSnapshotStats& stats);
  void Loop();

  Env* env_;
  SnapshotHostOptions options_;
  std::map<std::string, RegionState> regions_;  // the pass's own; one pass at a time

  mutable std::mutex stats_mu_;
  std::map<std::string, RegionSnapshotStats> stats_;  // guarded by stats_mu_
  std::unique_ptr<SnapshotMetrics> metrics_;

  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by wake_mu_
  std::thread thread_;
};

}  // namespace modelswap::snapshot
