// The per-model loop: poll (manifest, active file) -> load -> publish -> reclaim, with the volume
// I/O of each step run as a VolumeWorker job. The poll is in model_agent_poll.cc, loading and
// swapping in model_agent_swap.cc; here: construction, the loop, reclaiming and status.
#include "sidecar/agent/model_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/names.h"
#include "sidecar/agent/model_agent_jobs.h"
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
