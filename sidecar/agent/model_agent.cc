// The per-model loop: manifest -> load -> publish -> reclaim.
#include "sidecar/agent/model_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/agent/reclaimer.h"

namespace modelswap::agent {

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
}

Result<std::unique_ptr<ModelAgent>> ModelAgent::Create(Env* env, std::string model,
                                                       const ModelAgentConfig& config) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  ControlBlockOptions o{config.shm_dir, model, static_cast<uint64_t>(config.heartbeat_interval_ns),
                        static_cast<uint64_t>(config.reader_timeout_ns)};
  MS_ASSIGN_OR_RETURN(auto ctl, ControlBlockWriter::OpenOrCreate(env, o));
  return std::unique_ptr<ModelAgent>(new ModelAgent(env, std::move(model), config, std::move(ctl)));
}

void ModelAgent::Run() {
  while (!stop_.load(std::memory_order_relaxed)) {
    Tick();
    if (stop_.load(std::memory_order_relaxed)) break;
    watcher_.Wait(NextWaitNs());
  }
}

void ModelAgent::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  watcher_.Wake();
}

void ModelAgent::Tick() {
  ctl_->Tick();
  CheckActive();
  MaybeLoad();
  Reclaim();
}

int64_t ModelAgent::NextWaitNs() {
  int64_t wait = std::min(config_.poll_interval_ns, config_.heartbeat_interval_ns);
  std::lock_guard lock(mu_);
  if (failed_generation_ != 0) {
    wait = std::min(wait, std::max<int64_t>(0, retry_at_ns_ - env_->NowMonotonicNanos()));
  }
  return wait;
}

void ModelAgent::CheckActive() {
  std::shared_ptr<LoadedVersion> v;
  {
    std::lock_guard lock(mu_);
    v = active_;
  }
  if (!v) return;
  auto info = env_->Stat(v->mapped_path);
  // A missing file is fine: our mapping keeps the inode alive. A shorter one is not: touching
  // the pages past its end raises SIGBUS in every process that maps it.
  if (!info || info->size >= v->mapping->bytes().size()) return;
  std::string reason = "file truncated under the mapping: " + std::to_string(info->size) +
                       " bytes, mapped " + std::to_string(v->mapping->bytes().size());
  spdlog::error("drop model={} version={} generation={} reason=\"{}\"", model_, v->manifest.version,
                v->manifest.generation, reason);
  ctl::Record rec{0,
                  v->manifest.generation,
                  v->manifest.bytes,
                  v->checksum,
                  MS_CTL_STATE_FAILED,
                  static_cast<uint64_t>(env_->NowUnixNanos()),
                  v->manifest.version,
                  v->mapped_path};
  ctl_->Publish(rec);
  std::lock_guard lock(mu_);
  active_.reset();
  v->mapping.reset();  // never touch it again
  status_.truncations++;
  status_.last_rejected =
      Rejection{v->manifest.version, v->manifest.generation, reason, env_->NowUnixNanos()};
  status_.rejections++;
  failed_generation_ = v->manifest.generation;
  backoff_ns_ = config_.retry_initial_ns;
  retry_at_ns_ = env_->NowMonotonicNanos() + backoff_ns_;
}

void ModelAgent::MaybeLoad() {
  uint64_t held;
  bool have_active;
  {
    std::lock_guard lock(mu_);
    held = highest_generation_;
    have_active = active_ != nullptr;
  }
  // On a FUSE volume a replaced manifest can look unchanged (cached attributes and pages) for up
  // to the attribute timeout, which delayed swaps by up to a second; a forced stat ends that.
  // Errors are left to ReadManifest, which reports them.
  (void)env_->RevalidateAttributes(ManifestPath(config_.root, model_));
  auto m = ReadManifest(env_, config_.root, model_, held);
  if (!m) {
    std::lock_guard lock(mu_);
    status_.manifest_error = m.error().ToString();
    return;
  }
  {
    std::lock_guard lock(mu_);
    status_.manifest_error.clear();
    if (have_active && m->generation == active_->manifest.generation) return;
    if (m->generation == failed_generation_ && env_->NowMonotonicNanos() < retry_at_ns_) return;
  }
  spdlog::info("load model={} version={} generation={}", model_, m->version, m->generation);
  auto v = LoadVersion(env_, config_.root, *m, config_.load);
  if (!v) {
    Reject(*m, v.error());
    return;
  }
  Activate(std::move(*v));
}

void ModelAgent::Activate(std::shared_ptr<LoadedVersion> v) {
  ctl::Record rec{0,
                  v->manifest.generation,
                  v->manifest.bytes,
                  v->checksum,
                  MS_CTL_STATE_ACTIVE,
                  static_cast<uint64_t>(env_->NowUnixNanos()),
                  v->manifest.version,
                  v->mapped_path};
  ctl_->Publish(rec);  // apps see it from here on
  const auto& t = v->timings;
  spdlog::info(
      "swap model={} version={} generation={} stage_s={:.3f} map_s={:.3f} prefault_s={:.3f} "
      "verify_s={:.3f} prefault={}",
      model_, v->manifest.version, v->manifest.generation, t.stage_seconds, t.map_seconds,
      t.prefault_seconds, t.verify_seconds, v->prefault_method);
  std::lock_guard lock(mu_);
  if (active_) {
    active_->retired_at_ns = env_->NowMonotonicNanos();
    retired_.push_back(std::move(active_));
  }
  active_ = std::move(v);
  highest_generation_ = std::max(highest_generation_, active_->manifest.generation);
  failed_generation_ = 0;
  backoff_ns_ = 0;
  status_.swaps++;
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

void ModelAgent::Reclaim() {
  std::vector<ctl::SlotView> live = ctl_->LiveSlots();
  int64_t now = env_->NowMonotonicNanos();
  std::vector<std::shared_ptr<LoadedVersion>> drop;
  std::string active_source, active_mapped;
  {
    std::lock_guard lock(mu_);
    if (active_) {
      active_source = active_->source_path;
      active_mapped = active_->mapped_path;
    }
    std::erase_if(retired_, [&](std::shared_ptr<LoadedVersion>& v) {
      std::string why = ReclaimReason(*v, live, now, config_.grace_ns);
      if (why.empty()) return false;
      spdlog::info("reclaim model={} version={} generation={} reason=\"{}\"", model_,
                   v->manifest.version, v->manifest.generation, why);
      drop.push_back(std::move(v));
      return true;
    });
    status_.reclaimed += drop.size();
    status_.live_readers = static_cast<int>(live.size());
    std::set<uint64_t> held;
    for (const auto& s : live) {
      if (s.max_generation != 0) held.insert(s.max_generation);
      if (s.min_generation != 0) held.insert(s.min_generation);
    }
    status_.held_generations.assign(held.begin(), held.end());
  }
  // Unmapping and fadvise outside the lock: /v1/status never waits on them.
  for (auto& v : drop)
    DropVersion(env_, *v, active_source, active_mapped);
}

ModelStatus ModelAgent::Snapshot() {
  ModelStatus s;
  std::vector<ctl::SlotView> live = ctl_->LiveSlots();
  {
    std::lock_guard lock(mu_);
    s = status_;
    s.active = active_;
    s.state = active_ ? "active" : (failed_generation_ != 0 ? "failed" : "loading");
    s.inotify = watcher_.watching();
    int64_t now = env_->NowMonotonicNanos();
    if (failed_generation_ != 0) s.next_retry_in_ns = std::max<int64_t>(0, retry_at_ns_ - now);
    for (const auto& v : retired_) {
      s.retired.push_back(RetiredInfo{v->manifest.version, v->manifest.generation,
                                      HoldersOf(v->manifest.generation, live),
                                      static_cast<double>(now - v->retired_at_ns) / 1e9});
    }
    // Under the lock: the loop thread may unmap this version (truncation) at any time.
    if (active_ && active_->mapping) {
      if (auto r = env_->ResidentBytes(active_->mapping->bytes())) s.resident_bytes = *r;
    }
  }
  return s;
}

}  // namespace modelswap::agent
