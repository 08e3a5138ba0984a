// Pod Security levels of namespaces for the injection webhook; see namespace_policy.h.
#include "operator/webhook/namespace_policy.h"

#include <algorithm>

namespace modelswap::op {

const char* PodSecurityLevelName(PodSecurityLevel level) {
  switch (level) {
    case PodSecurityLevel::kPrivileged:
      return "privileged";
    case PodSecurityLevel::kBaseline:
      return "baseline";
    case PodSecurityLevel::kRestricted:
      return "restricted";
  }
  return "restricted";
}

Result<PodSecurityLevel> ParsePodSecurityLevel(std::string_view text) {
  for (PodSecurityLevel l : {PodSecurityLevel::kPrivileged, PodSecurityLevel::kBaseline,
                             PodSecurityLevel::kRestricted}) {
    if (text == PodSecurityLevelName(l)) return l;
  }
  return Fail(Code::kInvalidArgument, "Pod Security level \"" + std::string(text.substr(0, 40)) +
                                          "\" is not privileged, baseline or restricted");
}

PodSecurityLevel EnforcedLevel(const std::map<std::string, std::string>& labels,
                               PodSecurityLevel cluster_default) {
  auto it = labels.find(kPodSecurityEnforceLabel);
  if (it == labels.end()) return cluster_default;
  auto level = ParsePodSecurityLevel(it->second);
  return level ? *level : PodSecurityLevel::kRestricted;
}

namespace {

// metadata.labels of a Namespace object (non-string values skipped).
std::map<std::string, std::string> LabelsOf(const nlohmann::json& ns) {
  std::map<std::string, std::string> out;
  auto md = ns.find("metadata");
  if (md == ns.end() || !md->is_object()) return out;
  auto labels = md->find("labels");
  if (labels == md->end() || !labels->is_object()) return out;
  for (const auto& [k, v] : labels->items())
    if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

int64_t Nanos(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace

NamespaceLevelCache::NamespaceLevelCache(Env* env, Fetch fetch, NamespaceLevelCacheOptions opts)
    : env_(env), fetch_(std::move(fetch)), opts_(opts), thread_([this] { Run(); }) {}

NamespaceLevelCache::~NamespaceLevelCache() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t NamespaceLevelCache::fetches() const {
  std::lock_guard lock(mu_);
  return fetches_;
}

Result<PodSecurityLevel> NamespaceLevelCache::Level(const std::string& ns) {
  std::unique_lock lock(mu_);
  Entry& e = entries_[ns];  // std::map: the reference stays valid while other names are added
  if (Fresh(e, env_->NowMonotonicNanos())) return e.level;
  if (std::find(queue_.begin(), queue_.end(), ns) == queue_.end()) {
    queue_.push_back(ns);
    cv_.notify_all();
  }
  bool answered = cv_.wait_for(lock, opts_.timeout,
                               [&] { return stop_ || Fresh(e, env_->NowMonotonicNanos()); });
  if (answered && Fresh(e, env_->NowMonotonicNanos())) return e.level;
  return Fail(Code::kDeadlineExceeded, "reading namespace " + ns + " took longer than " +
                                           std::to_string(opts_.timeout.count()) + " ms");
}

void NamespaceLevelCache::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::string ns = queue_.front();
    ++fetches_;
    lock.unlock();
    // Outside the lock: the read may take up to the client's request timeout, and admissions of
    // other namespaces with fresh entries must not wait for it.
    Result<nlohmann::json> got = fetch_(ns);
    Result<PodSecurityLevel> level = Fail(Code::kInternal, "unset");
    if (got) {
      level = EnforcedLevel(LabelsOf(*got), opts_.cluster_default);
    } else {
      level = Fail(got.error().Context("get namespace " + ns));
    }
    lock.lock();
    queue_.pop_front();
    Entry& e = entries_[ns];
    e.done = true;
    e.level = std::move(level);
    e.expires_ns = env_->NowMonotonicNanos() + Nanos(e.level ? opts_.ttl : opts_.error_ttl);
    cv_.notify_all();
  }
}

}  // namespace modelswap::op
