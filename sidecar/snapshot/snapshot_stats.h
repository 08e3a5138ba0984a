// Per-region statistics of the snapshot host, as JSON (for the agent's /v1/status) and as
// Prometheus metrics (for its /metrics).
//
// Thread safety: RegionSnapshotStats is a plain value. SnapshotMetrics::Update may be called from
// any thread (it locks); the registry must outlive the SnapshotMetrics.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Gauge;
class Counter;
}  // namespace prometheus

namespace modelswap::snapshot {

struct RegionSnapshotStats {
  std::string name;
  bool attached = false;  // the region exists in the shm dir and the host has it mapped
  uint64_t region_bytes = 0;
  uint64_t committed_generation = 0;  // as of the host's last look
  uint64_t durable_generation = 0;    // newest generation fsynced to the snapshot dir
  uint64_t snapshots = 0;             // snapshot files written
  uint64_t snapshot_failures = 0;
  uint64_t busy_skips = 0;  // passes that found a commit running and tried again later
  int64_t last_snapshot_duration_ns = 0;
  uint64_t last_snapshot_stored_bytes = 0;  // data written (zero blocks are holes)
  uint64_t last_snapshot_file_bytes = 0;    // logical size of the file
  bool last_snapshot_delta = false;         // the last file was a delta (else full)
  uint64_t chain_deltas = 0;                // deltas since the newest full snapshot
  uint64_t bytes_written_total = 0;
  uint64_t restores = 0;           // regions restored from a snapshot by this host
  uint64_t restore_fallbacks = 0;  // snapshots skipped as invalid while restoring
  uint64_t restored_generation = 0;
  std::string last_error;  // empty when the last attempt succeeded
};

// {"<region>": {"attached", "region_bytes", "committed_generation", "durable_generation",
//   "snapshots", "snapshot_failures", "busy_skips", "last_snapshot": {"kind": "full"|"delta",
//   "duration_seconds", "stored_bytes", "file_bytes"}, "chain_deltas", "bytes_written_total",
//   "restores", "restore_fallbacks", "restored_generation", "last_error": string | null}}
nlohmann::json StatsToJson(const std::vector<RegionSnapshotStats>& stats);

// The same numbers as Prometheus metrics labelled {region="<name>"}:
//   modelswap_region_committed_generation, modelswap_region_durable_generation (gauges),
//   modelswap_snapshot_last_duration_seconds, modelswap_snapshot_last_stored_bytes (gauges),
//   modelswap_snapshots_total, modelswap_snapshot_failures_total,
//   modelswap_snapshot_bytes_written_total, modelswap_region_restores_total,
//   modelswap_region_restore_fallbacks_total (counters).
class SnapshotMetrics {
 public:
  explicit SnapshotMetrics(prometheus::Registry& registry);
  void Update(const RegionSnapshotStats& stats);

 private:
  std::mutex mu_;
  prometheus::Family<prometheus::Gauge>* committed_;
  prometheus::Family<prometheus::Gauge>* durable_;
  prometheus::Family<prometheus::Gauge>* duration_;
  prometheus::Family<prometheus::Gauge>* stored_;
  prometheus::Family<prometheus::Counter>* snapshots_;
  prometheus::Family<prometheus::Counter>* failures_;
  prometheus::Family<prometheus::Counter>* written_;
  prometheus::Family<prometheus::Counter>* restores_;
  prometheus::Family<prometheus::Counter>* fallbacks_;
  // Counter values already exported per region: counters only go up, by the difference.
  std::map<std::string, RegionSnapshotStats> exported_;
};

}  // namespace modelswap::snapshot
