// SnapshotHost: discovery of regions, the per-interval pass, pruning, restore at start, stats.
#include "sidecar/snapshot/snapshot_host.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "sidecar/snapshot/snapshot_format.h"
#include "sidecar/snapshot/snapshot_restore.h"
#include "sidecar/snapshot/snapshot_writer.h"

namespace modelswap::snapshot {
namespace {

constexpr std::string_view kRegionSuffix = ".region";
// Bounds a restore's work: at most this many deltas after a full snapshot, storing together at
// most half of what the full one stores (but always allowed kMinDeltaBudget, so tiny states
// still get deltas).
constexpr uint64_t kMaxDeltas = 16;
constexpr uint64_t kMinDeltaBudget = uint64_t{4} << 20;
constexpr std::string_view kSupersededPrefix = ".superseded-";

// Region names present in the shm dir (anything else there is ignored).
Result<std::set<std::string>> ListRegions(Env* env, const std::string& shm_dir) {
  Result<std::vector<std::string>> names = env->ListDir(RegionsDir(shm_dir));
  if (!names && names.error().code() == Code::kNotFound) return std::set<std::string>{};
  if (!names) return Fail(names.error());
  std::set<std::string> out;
  for (const std::string& n : *names) {
    if (!n.ends_with(kRegionSuffix)) continue;
    std::string base = n.substr(0, n.size() - kRegionSuffix.size());
    if (ValidateRegionName(base)) out.insert(std::move(base));
  }
  return out;
}

}  // namespace

Status SnapshotHost::ValidateOptions(const SnapshotHostOptions& o) {
  if (o.shm_dir.empty()) return Fail(Code::kInvalidArgument, "snapshot host: shm dir is empty");
  if (o.snapshot_dir.empty())
    return Fail(Code::kInvalidArgument, "--snapshot-dir: must name a directory");
  if (o.interval_ms < 1 || o.interval_ms > 86'400'000) {
    return Fail(Code::kInvalidArgument,
                fmt::format("--snapshot-interval {} ms is not in [1, 86400000]", o.interval_ms));
  }
  if (o.keep < 1 || o.keep > 1000)
    return Fail(Code::kInvalidArgument,
                fmt::format("--snapshot-keep {} is not in [1, 1000]", o.keep));
  return Ok();
}

SnapshotHost::SnapshotHost(Env* env, SnapshotHostOptions options)
    : env_(env), options_(std::move(options)) {}

SnapshotHost::~SnapshotHost() {
  Stop();
}

Status SnapshotHost::RestoreAll() {
  MS_RETURN_IF_ERROR(ValidateOptions(options_));
  MS_RETURN_IF_ERROR(env_->CreateDirs(options_.snapshot_dir));
  MS_ASSIGN_OR_RETURN(const std::vector<std::string> names, env_->ListDir(options_.snapshot_dir));
  std::string failed;
  for (const std::string& name : names) {
    if (!ValidateRegionName(name)) continue;  // dot-named leftovers, strangers
    RegionSnapshotStats& stats = regions_[name].stats;
    stats.name = name;
    Result<RestoreResult> r = RestoreRegion(env_, options_.snapshot_dir, options_.shm_dir, name);
    if (r) {
      ++stats.restores;
      stats.restore_fallbacks += r->fallbacks;
      stats.restored_generation = stats.committed_generation = stats.durable_generation =
          r->generation;
      stats.region_bytes = r->region_bytes;
      stats.last_error = r->skipped.empty() ? "" : "restore fell back: " + r->skipped.front();
    } else if (r.error().code() == Code::kAlreadyExists) {
      spdlog::info("snapshot restore not needed region={}: the region has live content", name);
    } else if (r.error().code() != Code::kNotFound) {
      spdlog::error("snapshot restore failed region={} error=\"{}\"", name, r.error().ToString());
      stats.last_error = r.error().ToString();
      failed += (failed.empty() ? "" : "; ") + r.error().message();
    }
    Publish(stats);
  }
  if (!failed.empty()) return Fail(Code::kCorruption, "snapshot restore: " + failed);
  return Ok();
}

Status SnapshotHost::Start() {
  MS_RETURN_IF_ERROR(ValidateOptions(options_));
  MS_RETURN_IF_ERROR(env_->CreateDirs(options_.snapshot_dir));
  if (thread_.joinable()) return Fail(Code::kFailedPrecondition, "snapshot host already started");
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
  return Ok();
}

void SnapshotHost::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  // Apps exit before the agent at pod shutdown (native sidecars stop last): flush their last
  // commits.
  if (Status s = RunOnce(); !s) spdlog::warn("snapshot final pass: {}", s.error().ToString());
}

void SnapshotHost::Loop() {
  const auto interval = std::chrono::milliseconds(options_.interval_ms);
  for (;;) {
    (void)RunOnce();  // failures are logged per region and kept in the stats
    std::unique_lock lock(wake_mu_);
    if (wake_.wait_for(lock, interval, [this] { return stopping_; })) return;
  }
}

Status SnapshotHost::RunOnce() {
  MS_RETURN_IF_ERROR(Discover());
  std::string failed;
  for (auto& [name, state] : regions_) {
    if (state.view) {
      if (Status s = SnapshotRegion(state); !s)
        failed += (failed.empty() ? "" : "; ") + s.error().message();
    }
    Publish(state.stats);
  }
  if (!failed.empty()) return Fail(Code::kIOError, "snapshot pass: " + failed);
  return Ok();
}

Status SnapshotHost::Discover() {
  MS_ASSIGN_OR_RETURN(const std::set<std::string> present, ListRegions(env_, options_.shm_dir));
  for (auto& [name, state] : regions_) {
    if (present.contains(name) || !state.view) continue;
    state.view.reset();  // the app's region is gone (pod shutting down, or renamed by hand)
    state.tip.reset();
    state.stats.attached = false;
    state.dir_checked = false;
  }
  for (const std::string& name : present) {
    RegionState& state = regions_[name];
    state.stats.name = name;
    if (state.view) {
      // A region deleted and created again under the same name is a new region: re-adopt it.
      Result<FileInfo> info = env_->Stat(state.view->file().path());
      if (info && info->inode == state.view->file().inode()) continue;
      state.view.reset();
      state.tip.reset();
      state.dir_checked = false;
    }
    if (Status s = Adopt(name, state); !s) {
      if (state.stats.last_error != s.error().ToString())
        spdlog::warn("snapshot host cannot use region={} error=\"{}\"", name, s.error().ToString());
      state.stats.last_error = s.error().ToString();
    }
  }
  return Ok();
}

Status SnapshotHost::Adopt(const std::string& name, RegionState& state) {
  MS_ASSIGN_OR_RETURN(RegionView view, RegionView::Open(options_.shm_dir, name));
  state.view.emplace(std::move(view));
  state.stats.attached = true;
  state.stats.region_bytes = state.view->region_bytes();
  return PrepareDir(name, state);
}

// Creates the region's snapshot directory, removes temp files a killed host left, and moves
// aside snapshots newer than the region's committed generation: they belong to another history
// (a region the app created afresh, or the corrupt newest file a restore skipped) and would
// otherwise win the next restore or be pruned in place of the files we write.
Status SnapshotHost::PrepareDir(const std::string& name, RegionState& state) {
  const std::string dir = RegionSnapshotDir(options_.snapshot_dir, name);
  if (!env_->Stat(dir)) {
    MS_RETURN_IF_ERROR(env_->CreateDirs(dir));
    MS_RETURN_IF_ERROR(env_->FsyncDir(options_.snapshot_dir));  // the new directory's entry
  }
  MS_ASSIGN_OR_RETURN(const std::vector<std::string> names, env_->ListDir(dir));
  const uint64_t committed = state.view->committed_gen();
  for (const std::string& n : names) {
    if (n.starts_with(kSnapshotTempPrefix)) {
      (void)env_->Remove(JoinPath(dir, n));
      continue;
    }
    const std::optional<uint64_t> gen = ParseSnapshotFileName(n);
    if (!gen || *gen <= committed) continue;
    spdlog::warn(
        "snapshot region={} file={} is newer than the region's generation {}: moved "
        "aside as {}{}",
        name, n, committed, kSupersededPrefix, n);
    MS_RETURN_IF_ERROR(
        env_->Rename(JoinPath(dir, n), JoinPath(dir, std::string(kSupersededPrefix) + n)));
  }
  state.dir_checked = true;
  return Ok();
}

Status SnapshotHost::SnapshotRegion(RegionState& state) {
  RegionView& view = *state.view;
  RegionSnapshotStats& stats = state.stats;
  const uint64_t committed = view.committed_gen();
  stats.committed_generation = committed;
  stats.durable_generation = view.durable_gen();
  if (committed == 0 || committed == stats.durable_generation) return Ok();  // nothing new
  if (!state.dir_checked) MS_RETURN_IF_ERROR(PrepareDir(view.name(), state));
  Result<uint64_t> pin = view.Pin();
  if (!pin) {
    ++stats.busy_skips;  // a commit is running: the next pass will catch a quiet moment
    return Ok();
  }
  const std::string dir = RegionSnapshotDir(options_.snapshot_dir, view.name());
  const std::optional<DeltaBase> base = NextBase(state);
  Result<SnapshotWriteResult> r = WriteSnapshot(env_, dir, view, *pin, base ? &*base : nullptr);
  if (!r) {
    ++stats.snapshot_failures;
    if (stats.last_error != r.error().ToString())
      spdlog::warn("snapshot failed region={} error=\"{}\"", view.name(), r.error().ToString());
    stats.last_error = r.error().ToString();
    return Fail(r.error());
  }
  view.PublishDurable(*pin);
  if (r->kind == SnapshotKind::kDelta) {
    state.tip->generation = *pin;
    state.tip->data_checksum = r->checksum;
    ++state.tip->deltas;
    state.tip->delta_bytes += r->stored_bytes;
  } else {
    state.tip = ChainTip{*pin, r->checksum, 0, 0, r->stored_bytes};
  }
  stats.last_snapshot_delta = r->kind == SnapshotKind::kDelta;
  stats.chain_deltas = state.tip->deltas;
  ++stats.snapshots;
  stats.durable_generation = *pin;
  stats.last_snapshot_duration_ns = r->duration_ns;
  stats.last_snapshot_stored_bytes = r->stored_bytes;
  stats.last_snapshot_file_bytes = r->file_bytes;
  stats.bytes_written_total += r->stored_bytes;
  stats.last_error.clear();
  if (options_.on_durable) options_.on_durable(view.name(), *pin);
  Prune(view.name(), *pin);
  return Ok();
}

std::optional<DeltaBase> SnapshotHost::NextBase(const RegionState& state) const {
  if (!state.tip || state.tip->deltas >= kMaxDeltas) return std::nullopt;
  const ChainTip& tip = *state.tip;
  const uint64_t budget = std::max(tip.full_bytes, kMinDeltaBudget) / 2;
  if (tip.delta_bytes >= budget) return std::nullopt;
  // The parent must still be there (pruning keeps it; a hand-deleted file means a full one).
  const std::string dir = RegionSnapshotDir(options_.snapshot_dir, state.view->name());
  if (!env_->Stat(JoinPath(dir, SnapshotFileName(tip.generation)))) return std::nullopt;
  return DeltaBase{tip.generation, tip.data_checksum, budget - tip.delta_bytes};
}

// Keeps the newest `keep` snapshots and every older file their chains need; removes the rest.
void SnapshotHost::Prune(const std::string& name, uint64_t just_written) {
  const std::string dir = RegionSnapshotDir(options_.snapshot_dir, name);
  Result<std::vector<uint64_t>> gens = ListSnapshotGenerations(env_, dir);
  if (!gens) {
    spdlog::warn("snapshot prune region={} error=\"{}\"", name, gens.error().ToString());
    return;
  }
  std::set<uint64_t> needed{just_written};
  for (size_t i = 0; i < gens->size() && i < static_cast<size_t>(options_.keep); ++i) {
    // Follows the chain down to its full snapshot; a file whose header cannot be read ends it
    // (it cannot be restored, and neither can what depends on it).
    uint64_t gen = (*gens)[i];
    needed.insert(gen);
    for (;;) {
      Result<SnapshotHeader> h =
          ReadSnapshotHeader(env_, JoinPath(dir, SnapshotFileName(gen)), name, gen);
      if (!h || h->kind == SnapshotKind::kFull) break;
      gen = h->parent_generation;
      if (!needed.insert(gen).second) break;  // the rest was followed from a newer snapshot
    }
  }
  for (const uint64_t gen : *gens) {
    if (needed.contains(gen)) continue;
    if (Status s = env_->Remove(JoinPath(dir, SnapshotFileName(gen))); !s)
      spdlog::warn("snapshot prune region={} error=\"{}\"", name, s.error().ToString());
  }
}

void SnapshotHost::Publish(const RegionSnapshotStats& stats) {
  {
    std::lock_guard lock(stats_mu_);
    stats_[stats.name] = stats;
  }
  if (metrics_) metrics_->Update(stats);
}

std::vector<RegionSnapshotStats> SnapshotHost::Stats() const {
  std::lock_guard lock(stats_mu_);
  std::vector<RegionSnapshotStats> out;
  for (const auto& [name, s] : stats_)
    out.push_back(s);
  return out;
}

void SnapshotHost::RegisterMetrics(prometheus::Registry& registry) {
  metrics_ = std::make_unique<SnapshotMetrics>(registry);
  for (const RegionSnapshotStats& s : Stats())
    metrics_->Update(s);
}

}  // namespace modelswap::snapshot
