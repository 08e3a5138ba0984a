// AgentProber: which version each injected pod has loaded, from the agents' GET /v1/status.
//
// The operator never looks at file locks on the shared volume (blobfuse has none); it asks the
// agents. Every `interval` it reads the injected-pod cache (pods labelled
// modelswap.io/injected=true, annotated modelswap.io/models: "a,b"), queries each running pod's
// agent (container port named "agent", else 8471) and aggregates per model key "ns/model":
// total pods, pods per active version, and whether every pod answered (retention only deletes
// files when it did). Models whose aggregate changed are reported through on_change, so status
// updates follow agents without the reconciler polling. The API server is not called at all.
//
// Thread safety: LoadFor from any thread; Start/Stop from the owner.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "operator/controller/reconciler.h"
#include "operator/kube/store.h"

namespace modelswap::op {

// model -> active version ("" when the model has none yet), from a /v1/status body.
Result<std::map<std::string, std::string>> ParseAgentStatus(const std::string& body);
// GETs <base_url>/v1/status.
Result<std::map<std::string, std::string>> FetchAgentStatus(const std::string& base_url,
                                                            std::chrono::milliseconds timeout);
// http://<podIP>:<agent port>, or "" when the pod is not running or has no IP.
std::string AgentUrl(const Json& pod);

class AgentProber {
 public:
  using OnChange = std::function<void(const std::string& model_key)>;
  AgentProber(Store* injected_pods, OnChange on_change, std::chrono::milliseconds interval);
  ~AgentProber();

  void Start();
  void Stop();
  void ProbeOnce();
  ModelLoad LoadFor(const std::string& model_key) const;

 private:
  void Loop();

  Store* pods_;
  OnChange on_change_;
  std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, ModelLoad> loads_;  // guarded by mu_
  bool probed_ = false;                     // guarded by mu_; no answer is "incomplete" until set
  std::thread thread_;
};

}  // namespace modelswap::op
