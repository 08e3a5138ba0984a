// Agent status polling: parsing, the blocking one-shot fetch, and the public face of the
// prober; the scheduler itself is probe_scheduler.h. See agent_prober.h.
#include "operator/controller/agent_prober.h"

#include <boost/asio/io_context.hpp>

#include "operator/controller/probe_client.h"
#include "operator/controller/probe_scheduler.h"
#include "operator/kube/resource.h"

namespace modelswap::op {

Result<std::map<std::string, AgentServed>> ParseAgentStatus(const std::string& body) {
  Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("models") ||
      !doc["models"].is_object()) {
    return Fail(Code::kInvalidArgument, "agent status: no \"models\" object");
  }
  std::map<std::string, AgentServed> out;
  for (const auto& [model, info] : doc["models"].items()) {
    AgentServed& s = out[model];
    if (!info.is_object()) continue;
    s.version = Field<std::string>(info, {"active", "version"});
    s.generation = Field<int64_t>(info, {"active", "generation"});
  }
  return out;
}

Result<std::map<std::string, std::string>> FetchAgentStatus(const std::string& base_url,
                                                            std::chrono::milliseconds timeout) {
  MS_ASSIGN_OR_RETURN(ProbeTarget target, ParseAgentBaseUrl(base_url));
  boost::asio::io_context ioc;
  Result<std::string> body = Fail(Code::kInternal, "agent probe did not finish");
  GetAgentStatus(ioc, target, timeout, 1 << 20,
                 [&](Result<std::string> b) { body = std::move(b); });
  ioc.run();  // returns once the call's last handler has run
  if (!body) return Fail(body.error());
  auto parsed = ParseAgentStatus(*body);
  if (!parsed) return Fail(parsed.error().Context(base_url));
  std::map<std::string, std::string> out;
  for (auto& [model, served] : *parsed)
    out[model] = std::move(served.version);
  return out;
}

std::string AgentUrl(const Json& pod) {
  ProbeTarget t = AgentEndpoint(pod);
  if (t.host.empty()) return "";
  std::string host = t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host;
  return "http://" + host + ":" + std::to_string(t.port);
}

AgentProber::AgentProber(Store* injected_pods, OnChange on_change,
                         std::chrono::milliseconds interval)
    : AgentProber(injected_pods, std::move(on_change), AgentProbeOptions{.interval = interval}) {}

AgentProber::AgentProber(Store* injected_pods, OnChange on_change, AgentProbeOptions opts)
    : impl_(std::make_unique<Impl>(injected_pods, std::move(on_change), opts)) {}

AgentProber::~AgentProber() {
  Stop();
}

void AgentProber::Start() {
  impl_->Start();
}

void AgentProber::Stop() {
  impl_->Stop();
}

ModelLoad AgentProber::LoadFor(const std::string& model_key) const {
  return impl_->LoadFor(model_key);
}

AgentReach AgentProber::ReachFor(const std::string& model_key) const {
  return impl_->ReachFor(model_key);
}

int AgentProber::PerPodStagingFor(const std::string& model_key) const {
  return impl_->PerPodStagingFor(model_key);
}

void AgentProber::ExpectVersion(const std::string& model_key, const std::string& version) {
  impl_->ExpectVersion(model_key, version);
}

AgentProbeStats AgentProber::stats() const {
  return impl_->Stats();
}

}  // namespace modelswap::op
