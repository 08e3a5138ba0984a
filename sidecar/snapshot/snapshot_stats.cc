// StatsToJson and SnapshotMetrics.
#include "sidecar/snapshot/snapshot_stats.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace modelswap::snapshot {

nlohmann::json StatsToJson(const std::vector<RegionSnapshotStats>& stats) {
  nlohmann::json out = nlohmann::json::object();
  for (const RegionSnapshotStats& s : stats) {
    out[s.name] = {
        {"attached", s.attached},
        {"region_bytes", s.region_bytes},
        {"committed_generation", s.committed_generation},
        {"durable_generation", s.durable_generation},
        {"snapshots", s.snapshots},
        {"snapshot_failures", s.snapshot_failures},
        {"busy_skips", s.busy_skips},
        {"last_snapshot",
         {{"kind", s.last_snapshot_delta ? "delta" : "full"},
          {"duration_seconds", static_cast<double>(s.last_snapshot_duration_ns) / 1e9},
          {"stored_bytes", s.last_snapshot_stored_bytes},
          {"file_bytes", s.last_snapshot_file_bytes}}},
        {"chain_deltas", s.chain_deltas},
        {"bytes_written_total", s.bytes_written_total},
        {"restores", s.restores},
        {"restore_fallbacks", s.restore_fallbacks},
        {"restored_generation", s.restored_generation},
        {"last_error",
         s.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.last_error)},
    };
  }
  return out;
}

SnapshotMetrics::SnapshotMetrics(prometheus::Registry& registry) {
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(registry);
  };
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(registry);
  };
  committed_ = gauge("modelswap_region_committed_generation",
                     "Newest committed generation of the region, as last seen by the host.");
  durable_ = gauge("modelswap_region_durable_generation",
                   "Newest generation of the region fsynced to the snapshot directory.");
  duration_ = gauge("modelswap_snapshot_last_duration_seconds",
                    "Time the last snapshot of the region took (pin to directory fsync).");
  stored_ = gauge("modelswap_snapshot_last_stored_bytes",
                  "Data bytes the last snapshot wrote (all-zero blocks are holes).");
  snapshots_ = counter("modelswap_snapshots_total", "Snapshot files written.");
  failures_ = counter("modelswap_snapshot_failures_total", "Snapshot attempts that failed.");
  written_ = counter("modelswap_snapshot_bytes_written_total", "Data bytes written to snapshots.");
  restores_ = counter("modelswap_region_restores_total", "Regions restored from a snapshot.");
  fallbacks_ = counter("modelswap_region_restore_fallbacks_total",
                       "Snapshots skipped during restore because they failed a check.");
}

void SnapshotMetrics::Update(const RegionSnapshotStats& s) {
  std::lock_guard lock(mu_);
  const prometheus::Labels labels{{"region", s.name}};
  committed_->Add(labels).Set(static_cast<double>(s.committed_generation));
  durable_->Add(labels).Set(static_cast<double>(s.durable_generation));
  duration_->Add(labels).Set(static_cast<double>(s.last_snapshot_duration_ns) / 1e9);
  stored_->Add(labels).Set(static_cast<double>(s.last_snapshot_stored_bytes));
  RegionSnapshotStats& seen = exported_[s.name];
  auto bump = [&](prometheus::Family<prometheus::Counter>* family, uint64_t now, uint64_t& was) {
    prometheus::Counter& c = family->Add(labels);  // Add returns the existing metric if present
    if (now > was) c.Increment(static_cast<double>(now - was));
    was = now;
  };
  bump(snapshots_, s.snapshots, seen.snapshots);
  bump(failures_, s.snapshot_failures, seen.snapshot_failures);
  bump(written_, s.bytes_written_total, seen.bytes_written_total);
  bump(restores_, s.restores, seen.restores);
  bump(fallbacks_, s.restore_fallbacks, seen.restore_fallbacks);
}

}  // namespace modelswap::snapshot
