// ModelAgent's swap (model_agent.h): the load job, and what the loop makes of its outcome: the
// version is activated (published to apps in the control block) or rejected with backoff; a
// truncated active version is dropped and earlier ones are loaded again as fallbacks.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "sidecar/agent/model_agent.h"
#include "sidecar/agent/model_agent_jobs.h"

namespace modelswap::agent {
namespace {

constexpr size_t kHistory = 4;  // activated versions kept as fallback candidates

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

}  // namespace

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
        "holes={} bytes_fetched={} deltas_fetched={} bases_fetched={} bases_from_cache={} "
        "bases_from_previous={} reflink={} already_assembled={} previous={}",
        model_, v->manifest.version, a.chunks_total, a.chunks_fetched, a.chunks_from_cache,
        a.chunks_from_previous, a.holes, a.bytes_fetched, a.delta_chunks_fetched, a.bases_fetched,
        a.bases_from_cache, a.bases_from_previous, a.reflink_used, a.already_assembled,
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

}  // namespace modelswap::agent
