// Starting and stopping the per-model loops and the HTTP server.
#include "sidecar/agent/agent.h"

#include <spdlog/spdlog.h>

#include <set>

namespace modelswap::agent {

Result<std::unique_ptr<Agent>> Agent::Start(Env* env, const AgentOptions& options) {
  if (options.models.empty()) return Fail(Code::kInvalidArgument, "agent: no models given");
  std::set<std::string> seen;
  auto agent = std::unique_ptr<Agent>(new Agent());
  for (const auto& name : options.models) {
    if (!seen.insert(name).second) {
      return Fail(Code::kInvalidArgument, "agent: model \"" + name + "\" given twice");
    }
    auto m = ModelAgent::Create(env, name, options.model);
    if (!m) return Fail(m.error().Context("model " + name));
    agent->models_.push_back(std::move(*m));
  }
  if (!options.listen.empty()) {
    Agent* raw = agent.get();
    MS_ASSIGN_OR_RETURN(agent->http_,
                        HttpServer::Start(options.listen, [raw] { return raw->Status(); }));
  }
  for (auto& m : agent->models_)
    agent->threads_.emplace_back([p = m.get()] { p->Run(); });
  spdlog::info("agent started models={} root={} shm_dir={}", options.models.size(),
               options.model.root, options.model.shm_dir);
  return agent;
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
}

std::vector<ModelStatus> Agent::Status() {
  std::vector<ModelStatus> out;
  out.reserve(models_.size());
  for (auto& m : models_)
    out.push_back(m->Snapshot());
  return out;
}

}  // namespace modelswap::agent
