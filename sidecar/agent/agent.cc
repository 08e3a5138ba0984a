// Starting and stopping the per-model loops and the HTTP server.
#include "sidecar/agent/agent.h"

#include "sidecar/agent/status_json.h"

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <set>

namespace modelswap::agent {

Result<std::unique_ptr<Agent>> Agent::Start(Env* env, const AgentOptions& options) {
  if (options.models.empty()) return Fail(Code::kInvalidArgument, "agent: no models given");
  std::set<std::string> seen;
  auto agent = std::unique_ptr<Agent>(new Agent());
  ModelAgentConfig model_config = options.model;
  if (!options.cache.options.dir.empty()) {
    // Passes run on the janitor's thread, not after each Assemble on a model's volume worker.
    model_config.load.cache = options.cache.options;
    model_config.load.cache.evict_after_assemble = false;
    agent->janitor_ = std::make_unique<CacheJanitor>(env, options.cache);
    model_config.on_chunked_activated = [j = agent->janitor_.get()] { j->Poke(); };
    spdlog::info("cache dir={} node_cache={} max_bytes={} fetch_threads={} ({})",
                 options.cache.options.dir, options.cache.node_cache,
                 options.cache.options.max_bytes, options.cache.options.fetch_threads,
                 options.cache.why);
  }
  for (const auto& name : options.models) {
    if (!seen.insert(name).second) {
      return Fail(Code::kInvalidArgument, "agent: model \"" + name + "\" given twice");
    }
    auto m = ModelAgent::Create(env, name, model_config);
    if (!m) return Fail(m.error().Context("model " + name));
    agent->models_.push_back(std::move(*m));
  }
  if (!options.snapshot.snapshot_dir.empty()) {
    snapshot::SnapshotHostOptions snap = options.snapshot;
    snap.shm_dir = options.model.shm_dir;
    MS_RETURN_IF_ERROR(agent->StartSnapshotHost(env, snap));
  }
  if (!options.listen.empty()) {
    Agent* raw = agent.get();
    HttpExtras extras;
    if (agent->snapshots_) {
      extras.regions = [raw] { return raw->snapshots_->StatsJson(); };
    }
    extras.cache = [raw] { return raw->Cache(); };
    extras.metrics_text = [raw] {
      std::string text;
      if (raw->snapshots_) {
        text = prometheus::TextSerializer().Serialize(raw->snapshot_metrics_->Collect());
      }
      if (auto c = raw->Cache()) text += CacheMetricsText(*c);
      return text;
    };
    MS_ASSIGN_OR_RETURN(agent->http_, HttpServer::Start(
                                          options.listen, [raw] { return raw->Status(); }, extras));
  }
  for (auto& m : agent->models_)
    agent->threads_.emplace_back([p = m.get()] { p->Run(); });
  spdlog::info("agent started models={} root={} shm_dir={}", options.models.size(),
               options.model.root, options.model.shm_dir);
  return agent;
}

// Restore failures are logged and counted (regions' last_error, restore metrics) but do not stop
// the agent: the models must still be served, and an app whose state could not be restored
// starts from an empty region rather than never.
modelswap::Status Agent::StartSnapshotHost(Env* env, const snapshot::SnapshotHostOptions& options) {
  MS_RETURN_IF_ERROR(snapshot::SnapshotHost::ValidateOptions(options));
  snapshots_ = std::make_unique<snapshot::SnapshotHost>(env, options);
  if (auto restored = snapshots_->RestoreAll(); !restored) {
    spdlog::error("snapshot restore failed err=\"{}\"", restored.error().ToString());
  }
  snapshot_metrics_ = std::make_unique<prometheus::Registry>();
  snapshots_->RegisterMetrics(*snapshot_metrics_);
  MS_RETURN_IF_ERROR(snapshots_->Start());
  spdlog::info("snapshot host started dir={} interval_ms={} keep={}", options.snapshot_dir,
               options.interval_ms, options.keep);
  return Ok();
}

Agent::~Agent() {
  Stop();
}

void Agent::Stop() {
  http_.reset();  // no request may snapshot a model while it is being torn down
  for (auto& m : models_)
    m->Stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Last: its final pass flushes commits the apps made before they were stopped.
  if (snapshots_) snapshots_->Stop();
}

std::optional<CacheStatus> Agent::Cache() {
  if (!janitor_) return std::nullopt;
  return janitor_->Status();
}

std::vector<ModelStatus> Agent::Status() {
  std::vector<ModelStatus> out;
  out.reserve(models_.size());
  for (auto& m : models_)
    out.push_back(m->Snapshot());
  return out;
}

}  // namespace modelswap::agent
