// The agent prober's scheduler; see probe_scheduler.h and agent_prober.h.
#include "operator/controller/probe_scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "operator/api/well_known.h"
#include "operator/webhook/node_cache_plan.h"

namespace modelswap::op {
namespace {

std::vector<std::string> ModelsOf(const Json& pod) {
  std::string models = AnnotationOf(pod, kAnnotationModels);
  std::vector<std::string> out;
  for (size_t pos = 0; pos <= models.size();) {
    size_t comma = std::min(models.find(',', pos), models.size());
    std::string m = models.substr(pos, comma - pos);
    m.erase(0, m.find_first_not_of(' '));
    m.erase(m.find_last_not_of(' ') + 1);
    if (!m.empty()) out.push_back(m);
    pos = comma + 1;
  }
  return out;
}

// Errors name the agent; a long one (an odd HTTP library message) is cut to keep state small.
std::string Short(std::string s) {
  constexpr size_t kMax = 160;
  if (s.size() > kMax) s.resize(kMax);
  return s;
}

}  // namespace

ProbeTarget AgentEndpoint(const Json& pod) {
  std::string ip = Field<std::string>(pod, {"status", "podIP"});
  if (ip.empty() || Field<std::string>(pod, {"status", "phase"}) != "Running") return {};
  int port = 8471;
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : Field<Json>(pod, {"spec", list}, Json::array())) {
      for (const auto& p : Field<Json>(c, {"ports"}, Json::array())) {
        if (Field<std::string>(p, {"name"}) == "agent")
          port = Field<int>(p, {"containerPort"}, port);
      }
    }
  }
  return ProbeTarget{ip, port};
}

AgentProber::Impl::Impl(Store* pods, OnChange on_change, AgentProbeOptions opts)
    : pods_(pods), on_change_(std::move(on_change)), o_(opts), tick_(ioc_) {
  o_.max_in_flight = std::max(1, o_.max_in_flight);
}

AgentProber::Impl::~Impl() {
  Stop();
}

int64_t AgentProber::Impl::Now() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t AgentProber::Impl::Jitter(int64_t span_ns) {
  if (span_ns <= 1) return 0;
  return std::uniform_int_distribution<int64_t>(0, span_ns - 1)(rng_);
}

void AgentProber::Impl::Start() {
  if (running_) return;
  running_ = true;
  start_ns_ = Now();
  boost::asio::post(ioc_, [this] { Tick(); });
  thread_ = std::thread([this] { ioc_.run(); });
}

void AgentProber::Impl::Stop() {
  if (!running_) return;
  ioc_.stop();  // probes in flight are abandoned; their sockets close with ioc_
  thread_.join();
  running_ = false;
}

void AgentProber::Impl::Tick() {
  int64_t now = Now();
  if (now - last_sync_ns_ >= NsOf(o_.sync_every)) {
    Sync(now);
    last_sync_ns_ = now;
  }
  Launch(now);
  if (dirty_ && now - last_publish_ns_ >= NsOf(o_.publish_every)) Aggregate(now);
  // Fine enough for rollout_interval, coarse enough to cost nothing when idle.
  auto step = std::clamp(o_.rollout_interval / 10, std::chrono::milliseconds(10),
                         std::chrono::milliseconds(100));
  tick_.expires_after(step);
  tick_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Tick();
  });
}

void AgentProber::Impl::Sync(int64_t now) {
  std::unordered_map<std::string, Pod> next;
  next.reserve(by_key_.size());
  for (const ObjectPtr& obj : pods_->List()) {
    if (IsBeingDeleted(*obj)) continue;
    std::vector<std::string> models = ModelsOf(*obj);
    if (models.empty()) continue;
    std::string key = KeyOf(*obj);
    auto old = by_key_.find(key);
    if (old != by_key_.end()) {
      Pod& p = next.emplace(key, std::move(old->second)).first->second;
      if (p.obj == obj) continue;  // unchanged since the last sync
      p.obj = obj;
      if (bool staging = !NodeCacheFallbackReason(*obj).empty(); staging != p.per_pod_staging) {
        p.per_pod_staging = staging;  // an annotation edited after admission
        dirty_ = true;
      }
      ProbeTarget ep = AgentEndpoint(*obj);
      if (ep.host == p.endpoint.host && ep.port == p.endpoint.port && models == p.models) continue;
    }
    // New, or its endpoint or models changed: start over (a probe in flight for the old one
    // finds another incarnation and is dropped).
    Pod& p = next[key];
    p = Pod{};
    p.obj = obj;
    p.id = ++next_id_;
    p.endpoint = AgentEndpoint(*obj);
    p.ns = NamespaceOf(*obj);
    p.models = std::move(models);
    p.served.assign(p.models.size(), AgentServed{});
    p.per_pod_staging = !NodeCacheFallbackReason(*obj).empty();
    dirty_ = true;
    if (!p.endpoint.host.empty()) Schedule(key, p, now + Jitter(NsOf(o_.rollout_interval)));
  }
  if (next.size() != by_key_.size()) dirty_ = true;  // pods went away (or came)
  by_key_.swap(next);
  pod_count_.store(static_cast<int>(by_key_.size()), std::memory_order_relaxed);
}

void AgentProber::Impl::Schedule(const std::string& key, Pod& p, int64_t due) {
  p.due_ns = due;
  due_.emplace(due, key);
}

void AgentProber::Impl::Launch(int64_t now) {
  while (in_flight_ < o_.max_in_flight && !due_.empty() && due_.top().first <= now) {
    Due d = due_.top();
    due_.pop();
    auto it = by_key_.find(d.second);
    if (it == by_key_.end()) continue;
    Pod& p = it->second;
    // Stale entries: rescheduled since (an earlier ExpectVersion), running, or no endpoint.
    if (p.in_flight || p.due_ns != d.first || p.endpoint.host.empty()) continue;
    Probe(d.second, p);
  }
}

void AgentProber::Impl::Probe(const std::string& key, Pod& p) {
  p.in_flight = true;
  ++in_flight_;
  if (in_flight_ > max_in_flight_.load(std::memory_order_relaxed))
    max_in_flight_.store(in_flight_, std::memory_order_relaxed);  // only this thread writes it
  GetAgentStatus(
      ioc_, p.endpoint, o_.timeout, o_.max_body_bytes,
      [this, key, id = p.id](Result<std::string> body) { Done(key, id, std::move(body)); });
}

void AgentProber::Impl::Done(const std::string& key, uint64_t id, Result<std::string> body) {
  --in_flight_;
  probes_.fetch_add(1, std::memory_order_relaxed);
  int64_t now = Now();
  auto it = by_key_.find(key);
  if (it == by_key_.end() || it->second.id != id) return Launch(now);
  Pod& p = it->second;
  p.in_flight = false;
  Result<std::map<std::string, AgentServed>> parsed =
      body ? ParseAgentStatus(*body) : Fail(body.error());
  if (!p.probed || p.answered != parsed.has_value()) dirty_ = true;
  p.probed = true;
  p.answered = parsed.has_value();
  if (!parsed) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    ++p.failures;
    p.error = Short(parsed.error().message());
  } else {
    p.failures = 0;
    p.error.clear();
    for (size_t i = 0; i < p.models.size(); ++i) {
      auto s = parsed->find(p.models[i]);
      AgentServed served = s == parsed->end() ? AgentServed{} : std::move(s->second);
      if (served == p.served[i]) continue;
      p.served[i] = std::move(served);
      dirty_ = true;
      // A pod reaching its rollout's target is progress: fast polling goes on for the rest.
      auto r = rollouts_.find(p.ns + "/" + p.models[i]);
      if (r != rollouts_.end() && OnTarget(r->second, p.served[i]))
        r->second.until_ns = now + NsOf(o_.rollout_window);
    }
  }
  Schedule(key, p, now + NextPeriod(p, now));
  Launch(now);
}

int64_t AgentProber::Impl::NextPeriod(const Pod& p, int64_t now) {
  int64_t base = NsOf(o_.interval);
  if (!p.answered) {
    int doublings = std::min(p.failures - 1, 16);
    base = std::max(base, std::min(base << std::max(doublings, 0), NsOf(o_.failure_backoff_max)));
  } else if (Behind(p, now)) {
    base = NsOf(o_.rollout_interval);
  }
  return base - base / 10 + Jitter(base / 5);  // +-10 %: phases stay spread
}

bool AgentProber::Impl::OnTarget(const Rollout& r, const AgentServed& s) const {
  return r.version.empty() ? s.generation >= r.generation : s.version == r.version;
}

bool AgentProber::Impl::Behind(const Pod& p, int64_t now) const {
  for (size_t i = 0; i < p.models.size(); ++i) {
    auto r = rollouts_.find(p.ns + "/" + p.models[i]);
    if (r != rollouts_.end() && r->second.until_ns > now && !OnTarget(r->second, p.served[i]))
      return true;
  }
  return false;
}

void AgentProber::Impl::Hurry(const std::string& model_key, int64_t now) {
  const Rollout& r = rollouts_.at(model_key);
  for (auto& [key, p] : by_key_) {
    if (p.in_flight || p.endpoint.host.empty()) continue;
    for (size_t i = 0; i < p.models.size(); ++i) {
      if (p.ns + "/" + p.models[i] != model_key || OnTarget(r, p.served[i])) continue;
      int64_t soon = now + Jitter(NsOf(o_.rollout_interval));
      if (soon < p.due_ns) Schedule(key, p, soon);
      break;
    }
  }
}

void AgentProber::Impl::ExpectVersion(const std::string& model_key, const std::string& version) {
  boost::asio::post(ioc_, [this, model_key, version] {
    int64_t now = Now();
    rollouts_[model_key] = Rollout{version, 0, now + NsOf(o_.rollout_window)};
    Hurry(model_key, now);
  });
}

}  // namespace modelswap::op
