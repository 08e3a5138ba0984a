// The per-model loop: poll (manifest, active file) -> load -> publish -> reclaim, with the volume
// I/O of each step run as a VolumeWorker job.
#include "sidecar/agent/model_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/agent/reclaimer.h"

namespace modelswap::agent {
namespace {

constexpr size_t kKnownGenerations = 64;  // generations remembered for conflict reports
constexpr size_t kHistory = 4;            // activated versions kept as fallback candidates

std::string Identity(const Manifest& m) {
  return m.version + " (" + m.checksum + ")";
}

ctl::Record RecordOf(const LoadedVersion& v, uint32_t state, Env* env) {
  ctl::Record r{0,
                v.manifest.generation,
                v.manifest.bytes,
                v.checksum,
                state,
                static_cast<uint64_t>(env->NowUnixNanos()),
                v.manifest.version,
                v.mapped_path,
                {}};
  for (const auto& l : v.lower)
    r.lower.push_back(ctl::LowerLayer{l->mapped_path, l->checksum});
  return r;
}

// The layers of every version in `versions`, each once.
std::vector<std::shared_ptr<LoadedVersion>> AllLayers(
    const std::vector<std::shared_ptr<LoadedVersion>>& versions) {
  std::vector<std::shared_ptr<LoadedVersion>> out;
  for (const auto& v : versions) {
    if (!v) continue;
    for (auto& l : LayersOf(v)) {
      if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(std::move(l));
    }
  }
  return out;
}

}  // namespace

// What a poll job found: the active file's current size (fstat of the mapped inode) and the
// manifest. Written by the job, read by the loop once the worker is idle again (the worker's
// mutex orders the two).
struct ModelAgent::PollOutcome {
  std::shared_ptr<LoadedVersion> checked;  // the version whose layers' sizes were taken
  // Each mapped layer of `checked` (newest first) and its file's current size.
  std::vector<std::pair<std::shared_ptr<LoadedVersion>, Result<uint64_t>>> sizes;
  Result<Manifest> manifest = Fail(Code::kInternal, "poll did not run");
};

struct ModelAgent::LoadJob {
  Manifest manifest;
  // Loading an older version again because the active one's file was damaged.
  bool fallback = false;
};

struct ModelAgent::LoadOutcome {
  LoadJob job;
  Result<std::shared_ptr<LoadedVersion>> loaded = Fail(Code::kInternal, "load did not run");
};

ModelAgent::ModelAgent(Env* env, std::string model, ModelAgentConfig config,
                       std::unique_ptr<ControlBlockWriter> ctl)
    : env_(env),
      model_(std::move(model)),
      config_(std::move(config)),
      ctl_(std::move(ctl)),
      watcher_(ModelDir(config_.root, model_), "manifest.json", config_.use_inotify) {
  status_.model = model_;
  status_.state = "loading";
  status_.agent_incarnation = ctl_->incarnation();
  worker_ = std::make_unique<VolumeWorker>([this] { watcher_.Wake(); });
  worker_->set_clock([env] { return env->NowMonotonicNanos(); });
}

ModelAgent::~ModelAgent() = default;

Result<std::unique_ptr<ModelAgent>> ModelAgent::Create(Env* env, std::string model,
                                                       const ModelAgentConfig& config) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  ControlBlockOptions o{config.shm_dir, model, static_cast<uint64_t>(config.heartbeat_interval_ns),
                        static_cast<uint64_t>(config.reader_timeout_ns)};
  MS_ASSIGN_OR_RETURN(auto ctl, ControlBlockWriter::OpenOrCreate(env, o));
  return std::unique_ptr<ModelAgent>(new ModelAgent(env, std::move(model), config, std::move(ctl)));
}

void ModelAgent::Run() {
  bool poll_due = true;
  while (!stop_.load(std::memory_order_relaxed)) {
    Tick(poll_due);
    if (stop_.load(std::memory_order_relaxed)) break;
    // Woken: a job finished (or Stop). Collect it, but poll again only on an event or when the
    // interval is up, or a fast volume would be polled in a busy loop.
    poll_due = watcher_.Wait(NextWaitNs()) != Watcher::Reason::kWoken;
  }
}

void ModelAgent::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  watcher_.Wake();
}

void ModelAgent::Tick(bool poll_due) {
  ctl_->Tick();
  if (!worker_->busy()) {
    if (auto p = std::move(poll_)) ApplyPoll(*p);
    if (auto l = std::move(load_)) ApplyLoad(*l);
    if (!next_loads_.empty()) {
      LoadJob job = std::move(next_loads_.front());
      next_loads_.erase(next_loads_.begin());
      StartLoad(std::move(job));
    } else if (poll_due || !to_drop_.empty()) {
      StartPoll();
    }
  }
  Reclaim();
  ReportBlocked();
}

int64_t ModelAgent::NextWaitNs() {
  int64_t wait = std::min(config_.poll_interval_ns, config_.heartbeat_interval_ns);
  std::lock_guard lock(mu_);
  if (failed_generation_ != 0) {
    wait = std::min(wait, std::max<int64_t>(0, retry_at_ns_ - env_->NowMonotonicNanos()));
  }
  return wait;
}

void ModelAgent::StartPoll() {
  auto out = std::make_shared<PollOutcome>();
  {
    std::lock_guard lock(mu_);
    out->checked = active_;
  }
  // What to drop: the layers of the reclaimed versions that no retained version uses (a base
  // stays while a delta on it is active or retired), and no file a retained version maps.
  std::vector<std::shared_ptr<LoadedVersion>> retained, drops;
  std::vector<std::string> keep_paths;
  {
    std::lock_guard lock(mu_);
    retained = retired_;
    retained.push_back(active_);
  }
  std::vector<std::shared_ptr<LoadedVersion>> in_use = AllLayers(retained);
  for (auto& l : AllLayers(to_drop_)) {
    if (std::find(in_use.begin(), in_use.end(), l) == in_use.end()) drops.push_back(std::move(l));
  }
  for (const auto& l : in_use) {
    keep_paths.push_back(l->source_path);
    keep_paths.push_back(l->mapped_path);
  }
  to_drop_.clear();
  std::vector<std::shared_ptr<LoadedVersion>> check;
  if (out->checked) {
    for (auto& l : LayersOf(out->checked)) {
      if (l->mapping) check.push_back(std::move(l));
    }
  }
  Env* env = env_;
  std::string root = config_.root, model = model_;
  poll_ = out;
  // Captures only values and shared state: it may outlive this ModelAgent (VolumeWorker).
  worker_->Start("poll", [=, drops = std::move(drops)](const auto& set_step) mutable {
    set_step("drop reclaimed versions");
    for (auto& v : drops)
      DropVersion(env, *v, keep_paths);
    drops.clear();
    if (!check.empty()) set_step("check the active files");
    for (auto& l : check)
      out->sizes.emplace_back(l, l->mapping->CurrentFileSize());
    check.clear();
    set_step("read manifest");
    // On a FUSE volume a replaced manifest can look unchanged (cached attributes and pages) for
    // up to the attribute timeout; a forced stat ends that. Errors are left to ReadManifest.
    (void)env->RevalidateAttributes(ManifestPath(root, model));
    out->manifest = ReadManifest(env, root, model);
  });
}

void ModelAgent::StartLoad(LoadJob job) {
  auto out = std::make_shared<LoadOutcome>();
  out->job = job;
  load_ = out;
  Env* env = env_;
  std::string root = config_.root;
  LoadOptions options = config_.load;
  // Layers a delta may share: those of every version held, except a truncated one (loaded again,
  // and verified, if a chain still names it). The job only reads what loading left immutable.
  std::vector<std::shared_ptr<LoadedVersion>> loaded;
  {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<LoadedVersion>> held = retired_;
    held.push_back(active_);
    for (auto& l : AllLayers(held)) {
      if (!l->truncated && l->mapping) loaded.push_back(std::move(l));
    }
  }
  spdlog::info("load model={} version={} generation={}{}", model_, job.manifest.version,
               job.manifest.generation, job.fallback ? " fallback=true" : "");
  worker_->Start(
      "load " + job.manifest.version + " generation " + std::to_string(job.manifest.generation),
      [=](const auto& set_step) {
        out->loaded = LoadVersion(env, root, out->job.manifest, options, set_step, loaded);
      });
}

void ModelAgent::ApplyPoll(PollOutcome& p) {
  std::shared_ptr<LoadedVersion> active;
  {
    std::lock_guard lock(mu_);
    active = active_;
  }
  // A missing file is fine: our mapping keeps the inode alive. A shorter one is not: touching
  // the pages past its end raises SIGBUS in every process that maps it. Any layer of a chain.
  if (p.checked && p.checked == active) {
    for (auto& [layer, size] : p.sizes) {
      if (size && layer->mapping && *size < layer->mapping->bytes().size()) {
        DropTruncated(active, layer, *size);
        break;
      }
    }
  }
  ApplyManifest(p.manifest);
}

void ModelAgent::ApplyManifest(const Result<Manifest>& read) {
  uint64_t held;
  {
    std::lock_guard lock(mu_);
    held = highest_generation_;
  }
  Result<Manifest> m = read;
  if (m && m->generation < held) {
    m = Fail(Code::kFailedPrecondition,
             ManifestPath(config_.root, model_) + ": generation " + std::to_string(m->generation) +
                 " is older than the held generation " + std::to_string(held) +
                 " (a stale or rolled-back copy)");
  }
  if (!m) {
    std::string why = m.error().ToString();
    std::lock_guard lock(mu_);
    if (status_.manifest_error != why) {
      spdlog::warn("manifest ignored model={} reason=\"{}\"", model_, why);
    }
    status_.manifest_error = why;
    status_.manifest_errors++;
    return;
  }
  if (GenerationConflict(*m)) return;
  std::lock_guard lock(mu_);
  status_.manifest_error.clear();
  if (active_ && m->generation == active_->manifest.generation) return;
  if (m->generation == failed_generation_ && env_->NowMonotonicNanos() < retry_at_ns_) return;
  if (!next_loads_.empty()) return;  // a fallback is being loaded first
  next_loads_.push_back(LoadJob{*m, false});
}

// Generations never repeat (sidecar/volume/manifest.h): one seen before with other content means
// a publisher repeated it (a stale manifest it built on). The agent cannot tell which content is
// meant, so it keeps what it serves and says so until a newer generation arrives.
bool ModelAgent::GenerationConflict(const Manifest& m) {
  const std::string id = Identity(m);
  auto it = std::find_if(known_.begin(), known_.end(),
                         [&](const auto& k) { return k.first == m.generation; });
  if (it == known_.end()) {
    known_.emplace_back(m.generation, id);
    if (known_.size() > kKnownGenerations) known_.erase(known_.begin());
    std::lock_guard lock(mu_);
    status_.generation_conflict.clear();
    return false;
  }
  if (it->second == id) return false;
  std::string what = "manifest generation " + std::to_string(m.generation) + " names " + id +
                     " but this agent knew generation " + std::to_string(m.generation) + " as " +
                     it->second + "; not loading it (a publisher repeated a generation)";
  std::lock_guard lock(mu_);
  if (status_.generation_conflict != what) {
    spdlog::error("generation conflict model={} generation={} known=\"{}\" now=\"{}\"", model_,
                  m.generation, it->second, id);
    status_.generation_conflicts++;
  }
  status_.generation_conflict = what;
  status_.manifest_error.clear();
  return true;
}

void ModelAgent::ApplyLoad(LoadOutcome& l) {
  const Manifest& m = l.job.manifest;
  if (l.loaded) {
    // A shared layer found truncated while this version loaded: load again later (no longer
    // shared, so mapped and verified anew).
    for (const auto& layer : (*l.loaded)->lower) {
      if (layer->truncated || !layer->mapping) {
        l.loaded = Fail(Code::kUnavailable, "layer " + layer->manifest.version +
                                                " was truncated under its mapping while " +
                                                m.version + " loaded");
        break;
      }
    }
  }
  if (l.loaded) {
    if (auto fits = ctl::CheckRecordFits(RecordOf(**l.loaded, MS_CTL_STATE_ACTIVE, env_)); !fits) {
      l.loaded = Fail(fits.error());
    }
  }
  if (l.loaded) {
    {
      std::lock_guard lock(mu_);
      status_.layer_loads += (*l.loaded)->layers_loaded;
      status_.layer_shares += (*l.loaded)->layers_shared;
    }
    Activate(std::move(*l.loaded), l.job.fallback);
    if (l.job.fallback) next_loads_.clear();  // the other candidates are no longer needed
    return;
  }
  if (!l.job.fallback) {
    Reject(m, l.loaded.error());
    return;
  }
  spdlog::error("fallback failed model={} version={} generation={} reason=\"{}\"", model_,
                m.version, m.generation, l.loaded.error().ToString());
  std::lock_guard lock(mu_);
  status_.degraded += "; fallback to " + m.version + " failed: " + l.loaded.error().message();
}

// A file of the active version (any layer of a chain) shrank under its mapping: apps are told at
// once (record FAILED: their next Acquire fails instead of mapping a file that SIGBUSes), the
// mapping is dropped, the layer is never shared again, and the versions that were active before
// it are queued for loading again, newest first: the first one whose files still verify
// (LoadVersion checks each is the very file its manifest named) serves.
void ModelAgent::DropTruncated(std::shared_ptr<LoadedVersion> v,
                               std::shared_ptr<LoadedVersion> layer, uint64_t size) {
  std::string reason =
      (layer == v ? std::string("file") : "file of layer " + layer->manifest.version) +
      " truncated under the mapping: " + std::to_string(size) + " bytes, mapped " +
      std::to_string(layer->mapping->bytes().size());
  spdlog::error("drop model={} version={} generation={} reason=\"{}\"", model_, v->manifest.version,
                v->manifest.generation, reason);
  ctl_->Publish(RecordOf(*v, MS_CTL_STATE_FAILED, env_));
  next_loads_.clear();
  for (auto it = history_.rbegin(); it != history_.rend(); ++it) {
    if (it->checksum != v->manifest.checksum) next_loads_.push_back(LoadJob{*it, true});
  }
  std::lock_guard lock(mu_);
  active_.reset();
  layer->truncated = true;
  v->truncated = true;  // its chain is broken: not a layer anyone shares either
  v->mapping.reset();   // never touch it again
  layer->mapping.reset();
  status_.truncations++;
  status_.last_rejected =
      Rejection{v->manifest.version, v->manifest.generation, reason, env_->NowUnixNanos()};
  status_.rejections++;
  status_.degraded = v->manifest.version + " (generation " +
                     std::to_string(v->manifest.generation) + ") dropped: " + reason;
  if (next_loads_.empty()) status_.degraded += "; no earlier version to fall back to";
  failed_generation_ = v->manifest.generation;
  backoff_ns_ = config_.retry_initial_ns;
  retry_at_ns_ = env_->NowMonotonicNanos() + backoff_ns_;
}

void ModelAgent::Activate(std::shared_ptr<LoadedVersion> v, bool fallback) {
  ctl_->Publish(RecordOf(*v, MS_CTL_STATE_ACTIVE, env_));  // apps see it from here on
  const auto& t = v->timings;
  spdlog::info(
      "swap model={} version={} generation={} layout={} stage_s={:.3f} assemble_s={:.3f} "
      "map_s={:.3f} prefault_s={:.3f} verify_s={:.3f} prefault={}{}",
      model_, v->manifest.version, v->manifest.generation, v->chunked ? "chunked" : "whole",
      t.stage_seconds, t.assemble_seconds, t.map_seconds, t.prefault_seconds, t.verify_seconds,
      v->prefault_method, fallback ? " fallback=true" : "");
  if (v->chunked) {
    const cache::AssembleStats& a = v->assemble;
    spdlog::info(
        "assembled model={} version={} chunks={} fetched={} from_cache={} from_previous={} "
        "holes={} bytes_fetched={} reflink={} already_assembled={} previous={}",
        model_, v->manifest.version, a.chunks_total, a.chunks_fetched, a.chunks_from_cache,
        a.chunks_from_previous, a.holes, a.bytes_fetched, a.reflink_used, a.already_assembled,
        a.previous_version);
    if (config_.on_chunked_activated) config_.on_chunked_activated();
  }
  if (!fallback) {
    std::erase_if(history_, [&](const Manifest& h) { return h.checksum == v->manifest.checksum; });
    history_.push_back(v->manifest);
    if (history_.size() > kHistory) history_.erase(history_.begin());
  }
  std::lock_guard lock(mu_);
  if (active_) {
    active_->retired_at_ns = env_->NowMonotonicNanos();
    retired_.push_back(std::move(active_));
  }
  active_ = std::move(v);
  highest_generation_ = std::max(highest_generation_, active_->manifest.generation);
  status_.swaps++;
  if (fallback) {
    status_.degraded += "; serving " + active_->manifest.version + " (generation " +
                        std::to_string(active_->manifest.generation) + ") again";
    return;  // the damaged generation stays failed: retried with backoff, never trusted
  }
  status_.degraded.clear();
  failed_generation_ = 0;
  backoff_ns_ = 0;
}

void ModelAgent::Reject(const Manifest& m, const Error& e) {
  spdlog::error("reject model={} version={} generation={} reason=\"{}\"", model_, m.version,
                m.generation, e.ToString());
  std::lock_guard lock(mu_);
  // Exponential backoff for the same generation; a newer manifest starts over.
  backoff_ns_ = (failed_generation_ == m.generation && backoff_ns_ > 0)
                    ? std::min(backoff_ns_ * 2, config_.retry_max_ns)
                    : config_.retry_initial_ns;
  failed_generation_ = m.generation;
  retry_at_ns_ = env_->NowMonotonicNanos() + backoff_ns_;
  status_.rejections++;
  status_.last_rejected = Rejection{m.version, m.generation, e.ToString(), env_->NowUnixNanos()};
}

// Decides what to drop; the dropping itself (munmap, fadvise, deleting a staged copy: volume
// I/O) is done by the next poll job.
void ModelAgent::Reclaim() {
  std::vector<ctl::SlotView> live = ctl_->LiveSlots();
  int64_t now = env_->NowMonotonicNanos();
  std::lock_guard lock(mu_);
  size_t before = to_drop_.size();
  std::erase_if(retired_, [&](std::shared_ptr<LoadedVersion>& v) {
    std::string why = ReclaimReason(*v, live, now, config_.grace_ns);
    if (why.empty()) return false;
    spdlog::info("reclaim model={} version={} generation={} reason=\"{}\"", model_,
                 v->manifest.version, v->manifest.generation, why);
    to_drop_.push_back(std::move(v));
    return true;
  });
  status_.reclaimed += to_drop_.size() - before;
  status_.live_readers = static_cast<int>(live.size());
  std::set<uint64_t> held;
  for (const auto& s : live) {
    if (s.max_generation != 0) held.insert(s.max_generation);
    if (s.min_generation != 0) held.insert(s.min_generation);
  }
  status_.held_generations.assign(held.begin(), held.end());
}

void ModelAgent::ReportBlocked() {
  auto r = worker_->running();
  if (!r || env_->NowMonotonicNanos() - r->started_ns < config_.volume_timeout_ns) return;
  if (logged_blocked_since_ == r->started_ns) return;
  logged_blocked_since_ = r->started_ns;
  spdlog::error("volume blocked model={} step=\"{}\" seconds={:.1f}", model_, r->step,
                static_cast<double>(env_->NowMonotonicNanos() - r->started_ns) / 1e9);
}

ModelStatus ModelAgent::Snapshot() {
  ModelStatus s;
  std::vector<ctl::SlotView> live = ctl_->LiveSlots();
  int64_t now = env_->NowMonotonicNanos();
  if (auto r = worker_->running()) {
    s.volume_step = r->step;
    s.volume_seconds = static_cast<double>(now - r->started_ns) / 1e9;
    s.volume_blocked = now - r->started_ns >= config_.volume_timeout_ns;
  }
  {
    std::lock_guard lock(mu_);
    std::string step = std::move(s.volume_step);
    double seconds = s.volume_seconds;
    bool blocked = s.volume_blocked;
    s = status_;
    s.volume_step = std::move(step);
    s.volume_seconds = seconds;
    s.volume_blocked = blocked;
    s.active = active_;
    s.state = active_ ? "active" : (failed_generation_ != 0 ? "failed" : "loading");
    s.inotify = watcher_.watching();
    if (failed_generation_ != 0) s.next_retry_in_ns = std::max<int64_t>(0, retry_at_ns_ - now);
    for (const auto& v : retired_) {
      s.retired.push_back(RetiredInfo{
          v->manifest.version, v->manifest.generation, HoldersOf(v->manifest.generation, live),
          static_cast<double>(now - v->retired_at_ns) / 1e9, v->layer_count()});
    }
    // Under the lock: the loop thread may unmap this version (truncation) at any time.
    if (active_) {
      for (const auto& l : LayersOf(active_)) {
        if (!l->mapping) continue;
        if (auto r = env_->ResidentBytes(l->mapping->bytes())) s.resident_bytes += *r;
      }
    }
  }
  return s;
}

}  // namespace modelswap::agent
