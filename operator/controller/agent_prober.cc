// Agent status polling; see agent_prober.h.
#include "operator/controller/agent_prober.h"

#include <cpprest/http_client.h>
#include <spdlog/spdlog.h>

#include "operator/api/well_known.h"
#include "operator/kube/resource.h"

namespace modelswap::op {

Result<std::map<std::string, std::string>> ParseAgentStatus(const std::string& body) {
  Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("models") ||
      !doc["models"].is_object()) {
    return Fail(Code::kInvalidArgument, "agent status: no \"models\" object");
  }
  std::map<std::string, std::string> out;
  for (const auto& [model, info] : doc["models"].items()) {
    out[model] = info.is_object() ? Field<std::string>(info, {"active", "version"}) : "";
  }
  return out;
}

Result<std::map<std::string, std::string>> FetchAgentStatus(const std::string& base_url,
                                                            std::chrono::milliseconds timeout) {
  try {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(timeout);
    web::http::client::http_client client(base_url, cfg);
    auto resp = client.request("GET", "/v1/status").get();
    std::string body = resp.extract_string(true).get();
    if (resp.status_code() != 200) {
      return Fail(Code::kUnavailable,
                  "agent " + base_url + ": HTTP " + std::to_string(resp.status_code()));
    }
    auto parsed = ParseAgentStatus(body);
    if (!parsed) return Fail(parsed.error().Context(base_url));
    return parsed;
  } catch (const std::exception& e) {
    return Fail(Code::kUnavailable, "agent " + base_url + ": " + e.what());
  }
}

std::string AgentUrl(const Json& pod) {
  std::string ip = Field<std::string>(pod, {"status", "podIP"});
  if (ip.empty() || Field<std::string>(pod, {"status", "phase"}) != "Running") return "";
  int port = 8471;
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : Field<Json>(pod, {"spec", list}, Json::array())) {
      for (const auto& p : Field<Json>(c, {"ports"}, Json::array())) {
        if (Field<std::string>(p, {"name"}) == "agent")
          port = Field<int>(p, {"containerPort"}, port);
      }
    }
  }
  if (ip.find(':') != std::string::npos) ip = "[" + ip + "]";
  return "http://" + ip + ":" + std::to_string(port);
}

AgentProber::AgentProber(Store* injected_pods, OnChange on_change,
                         std::chrono::milliseconds interval)
    : pods_(injected_pods), on_change_(std::move(on_change)), interval_(interval) {}

AgentProber::~AgentProber() {
  Stop();
}

void AgentProber::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void AgentProber::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void AgentProber::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    ProbeOnce();
    lock.lock();
    cv_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

void AgentProber::ProbeOnce() {
  std::map<std::string, ModelLoad> fresh;
  for (const ObjectPtr& pod : pods_->List()) {
    if (IsBeingDeleted(*pod)) continue;
    std::string models = AnnotationOf(*pod, kAnnotationModels);
    std::vector<std::string> keys;
    for (size_t pos = 0; pos < models.size();) {
      size_t comma = models.find(',', pos);
      if (comma == std::string::npos) comma = models.size();
      std::string m = models.substr(pos, comma - pos);
      pos = comma + 1;
      if (!m.empty()) keys.push_back(m);
    }
    if (keys.empty()) continue;
    std::string url = AgentUrl(*pod);
    Result<std::map<std::string, std::string>> status =
        url.empty() ? Fail(Code::kUnavailable, "pod not running")
                    : FetchAgentStatus(url, std::chrono::seconds(2));
    if (!status)
      spdlog::debug("agent probe pod={} err=\"{}\"", KeyOf(*pod), status.error().message());
    for (const auto& m : keys) {
      ModelLoad& load =
          fresh.try_emplace(KeyOf(NamespaceOf(*pod), m), ModelLoad{true, 0, {}}).first->second;
      ++load.total;
      if (!status) {
        load.complete = false;
        continue;
      }
      auto it = status->find(m);
      if (it != status->end() && !it->second.empty()) ++load.loaded[it->second];
    }
  }
  std::vector<std::string> changed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, load] : fresh) {
      auto it = loads_.find(key);
      if (it == loads_.end() || !(it->second == load)) changed.push_back(key);
    }
    for (const auto& [key, load] : loads_) {
      if (fresh.count(key) == 0) changed.push_back(key);
    }
    loads_.swap(fresh);
    probed_ = true;
  }
  for (const auto& key : changed)
    on_change_(key);
}

ModelLoad AgentProber::LoadFor(const std::string& model_key) const {
  std::lock_guard lock(mu_);
  if (!probed_) return ModelLoad{false, 0, {}};  // before the first probe nothing is known
  auto it = loads_.find(model_key);
  // No injected pod serves the model: nothing can hold a file, so information is complete.
  if (it == loads_.end()) return ModelLoad{true, 0, {}};
  return it->second;
}

}  // namespace modelswap::op
