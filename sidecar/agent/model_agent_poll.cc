// ModelAgent's poll (model_agent.h): the poll job (drop reclaimed versions, check the active
// files' sizes, read the manifest) and what the loop makes of its outcome: a truncated active file
// is dropped, a manifest is checked (stale, repeated generation) and queued for loading.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "common/names.h"
#include "sidecar/agent/model_agent.h"
#include "sidecar/agent/model_agent_jobs.h"
#include "sidecar/agent/reclaimer.h"

namespace modelswap::agent {
namespace {

constexpr size_t kKnownGenerations = 64;  // generations remembered for conflict reports

std::string Identity(const Manifest& m) {
  return m.version + " (" + m.checksum + ")";
}

}  // namespace

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

}  // namespace modelswap::agent
