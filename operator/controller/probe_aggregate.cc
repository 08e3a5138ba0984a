// The agent prober's per-model aggregate: load (what the reconciler reads for pods_loaded,
// pods_total and retention), reach (unreachable agents), pods on per-pod staging instead of the
// node cache (status.pods.perPodStaging), rollouts seen in the answers; and the readers' side. See
// agent_prober.h and probe_scheduler.h.
#include <spdlog/spdlog.h>

#include "operator/controller/probe_scheduler.h"

namespace modelswap::op {
namespace {

// Per model while aggregating: answered pods and how many serve the newest generation seen.
struct Newest {
  int answered = 0;
  int at_newest = 0;
  int64_t generation = 0;
};

void Note(Newest& n, int64_t generation) {
  ++n.answered;
  if (generation > n.generation) {
    n.generation = generation;
    n.at_newest = 0;
  }
  if (generation == n.generation) ++n.at_newest;
}

}  // namespace

void AgentProber::Impl::Aggregate(int64_t now) {
  // The first aggregate waits for every pod's first answer (or for the time one takes), so
  // status does not show "0/N pods" for the second the first probes need.
  const int64_t first_round = NsOf(o_.rollout_interval + o_.timeout);
  bool first;
  {
    std::lock_guard lock(mu_);
    first = !published_;
  }
  if (first && now - start_ns_ < first_round) {
    for (const auto& [key, p] : by_key_) {
      if (!p.endpoint.host.empty() && !p.probed) return;
    }
  }
  std::map<std::string, ModelLoad> loads;
  std::map<std::string, AgentReach> reach;
  std::map<std::string, Newest> newest;
  std::map<std::string, int> staging;  // every model of `loads` has an entry
  for (const auto& [key, p] : by_key_) {
    for (size_t i = 0; i < p.models.size(); ++i) {
      std::string mk = p.ns + "/" + p.models[i];
      ModelLoad& l = loads.try_emplace(mk, ModelLoad{true, 0, {}}).first->second;
      AgentReach& r = reach[mk];
      ++l.total;
      staging[mk] += p.per_pod_staging ? 1 : 0;  // known from the annotation, probed or not
      if (p.endpoint.host.empty()) {
        l.complete = false;
        if (r.not_running++ == 0 && r.unreachable == 0) r.example = key + ": not running";
      } else if (!p.probed) {
        l.complete = false;
      } else if (!p.answered) {
        l.complete = false;
        if (r.unreachable++ == 0) r.example = key + ": " + p.error;  // preferred as an example
      } else {
        if (!p.served[i].version.empty()) ++l.loaded[p.served[i].version];
        Note(newest[mk], p.served[i].generation);
      }
    }
  }
  // Rollouts: a model whose answering pods disagree on the generation is rolling out, even
  // before (or without) ExpectVersion; one whose pods all reached the target is done.
  for (auto it = rollouts_.begin(); it != rollouts_.end();) {
    const Rollout& r = it->second;
    auto l = loads.find(it->first);
    bool done = r.until_ns <= now || l == loads.end();
    if (!done && l->second.complete) {
      done = r.version.empty() ? newest[it->first].at_newest == l->second.total
                               : l->second.loaded[r.version] == l->second.total;
    }
    it = done ? rollouts_.erase(it) : std::next(it);
  }
  for (const auto& [mk, n] : newest) {
    if (n.at_newest == n.answered) continue;
    auto r = rollouts_.find(mk);
    if (r != rollouts_.end() &&
        (!r->second.version.empty() || r->second.generation >= n.generation))
      continue;  // already rolling toward this (or a named version)
    rollouts_[mk] = Rollout{"", n.generation, now + NsOf(o_.rollout_window)};
    spdlog::debug("rollout seen model={} generation={}", mk, n.generation);
    Hurry(mk, now);
  }

  std::vector<std::string> changed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [mk, l] : loads) {
      auto old = loads_.find(mk);
      auto old_reach = reach_.find(mk);
      auto old_staging = staging_.find(mk);
      if (old == loads_.end() || !(old->second == l) || old_reach == reach_.end() ||
          !(old_reach->second == reach[mk]) || old_staging == staging_.end() ||
          old_staging->second != staging[mk]) {
        changed.push_back(mk);
      }
    }
    for (const auto& [mk, l] : loads_) {
      if (loads.count(mk) == 0) changed.push_back(mk);
    }
    loads_.swap(loads);
    reach_ = reach;
    staging_.swap(staging);
    published_ = true;
  }
  Log(reach);
  dirty_ = false;
  last_publish_ns_ = now;
  for (const auto& mk : changed)
    on_change_(mk);
}

// Once when a model's agents become unreachable and once when they are back: a default-deny
// NetworkPolicy otherwise leaves rollout status incomplete and retention stalled in silence.
void AgentProber::Impl::Log(const std::map<std::string, AgentReach>& reach) {
  for (const auto& [mk, r] : reach) {
    int before = logged_reach_.count(mk) ? logged_reach_[mk].unreachable : 0;
    if (r.unreachable > 0 && before == 0) {
      spdlog::warn("agents unreachable model={} pods={} example=\"{}\"", mk, r.unreachable,
                   r.example);
    } else if (r.unreachable == 0 && before > 0) {
      spdlog::info("agents reachable again model={}", mk);
    }
  }
  logged_reach_ = reach;
}

ModelLoad AgentProber::Impl::LoadFor(const std::string& model_key) const {
  std::lock_guard lock(mu_);
  if (!published_) return ModelLoad{false, 0, {}};  // before the first aggregate nothing is known
  auto it = loads_.find(model_key);
  // No injected pod serves the model: nothing can hold a file, so information is complete.
  if (it == loads_.end()) return ModelLoad{true, 0, {}};
  return it->second;
}

AgentReach AgentProber::Impl::ReachFor(const std::string& model_key) const {
  std::lock_guard lock(mu_);
  auto it = reach_.find(model_key);
  return it == reach_.end() ? AgentReach{} : it->second;
}

int AgentProber::Impl::PerPodStagingFor(const std::string& model_key) const {
  std::lock_guard lock(mu_);
  auto it = staging_.find(model_key);
  return it == staging_.end() ? 0 : it->second;
}

AgentProbeStats AgentProber::Impl::Stats() const {
  return AgentProbeStats{.probes = probes_.load(std::memory_order_relaxed),
                         .failures = failures_.load(std::memory_order_relaxed),
                         .max_in_flight = max_in_flight_.load(std::memory_order_relaxed),
                         .pods = pod_count_.load(std::memory_order_relaxed)};
}

}  // namespace modelswap::op
