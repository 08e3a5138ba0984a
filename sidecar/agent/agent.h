// The agent: one ModelAgent thread per configured model, and the HTTP server over their status.
//
// Start() creates (or adopts) every model's control block before any thread runs, so a bad
// shm-dir or a second agent fails the start with a clear error. With a snapshot dir, it then
// restores app regions from their newest valid snapshots before the HTTP server exists, so
// /readyz (which app containers wait for) cannot answer before the apps' state is back. Then
// loads happen in the
// background and /readyz turns 200 once every model has an active version. Stop() wakes every
// loop, joins them and closes the listener; mappings are released with the Agent.
//
// With a cache directory, a CacheJanitor (cache_janitor.h) runs eviction passes over it on a
// thread of its own, after each chunked version a model activates and every few minutes.
//
// Thread safety: Start/Stop/destructor from one thread; Status() from any thread.
#pragma once

#include <prometheus/registry.h>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/agent/cache_janitor.h"
#include "sidecar/agent/http_server.h"
#include "sidecar/agent/model_agent.h"
#include "sidecar/snapshot/snapshot_host.h"

namespace modelswap::agent {

struct AgentOptions {
  std::vector<std::string> models;
  std::string listen = "0.0.0.0:8471";  // empty: no HTTP server
  ModelAgentConfig model;
  // The snapshot host (app regions that survive the pod); off while snapshot.snapshot_dir is
  // empty. Its shm_dir is the models' shm dir.
  snapshot::SnapshotHostOptions snapshot;
  // The cache chunked versions are assembled in (options.dir empty: none, chunked versions are
  // rejected). Its options become every model's load.cache.
  CacheConfig cache;
};

class Agent {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Agent>> Start(Env* env, const AgentOptions& options);
  ~Agent();
  void Stop();
  std::vector<ModelStatus> Status();
  // nullopt without a cache directory.
  std::optional<CacheStatus> Cache();

 private:
  Agent() = default;
  modelswap::Status StartSnapshotHost(Env* env, const snapshot::SnapshotHostOptions& options);

  std::vector<std::unique_ptr<ModelAgent>> models_;
  std::unique_ptr<snapshot::SnapshotHost> snapshots_;
  // Before the models in destruction order is not needed: models only Poke() it, and Stop()
  // joins their threads before the Agent (and so the janitor) is destroyed.
  std::unique_ptr<CacheJanitor> janitor_;
  std::unique_ptr<prometheus::Registry> snapshot_metrics_;
  std::vector<std::thread> threads_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace modelswap::agent
