// Aggregating Event recorder; see event_recorder.h.
#include "operator/controller/event_recorder.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "operator/kube/resource.h"

namespace modelswap::op {

EventRecorder::EventRecorder(KubeClient* client, std::string component, std::string instance,
                             size_t max_entries)
    : client_(client),
      component_(std::move(component)),
      instance_(std::move(instance)),
      max_entries_(max_entries) {}

int EventRecorder::Record(const EventSubject& s, const std::string& type, const std::string& reason,
                          const std::string& message, int64_t now_unix_ns) {
  const std::string msg = message.substr(0, 1024);
  const std::string key = s.uid + "\n" + type + "\n" + reason + "\n" + msg;
  const std::string now = FormatTime(now_unix_ns);
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    Entry& e = it->second.first;
    lru_.splice(lru_.begin(), lru_, it->second.second);
    Json patch = {{"count", e.count + 1}, {"lastTimestamp", now}};
    auto r = client_->Patch(kEvents, s.ns, e.name, PatchType::kMerge, patch, false);
    if (r) return ++e.count;
    if (r.error().code() != Code::kNotFound) {
      spdlog::warn("event not updated name={} reason={} err=\"{}\"", e.name, reason,
                   r.error().message());
      return 0;
    }
    lru_.erase(it->second.second);
    entries_.erase(it);  // expired (event TTL): record it anew
  }
  char suffix[20];
  std::snprintf(suffix, sizeof(suffix), ".%llx", static_cast<unsigned long long>(now_unix_ns));
  const std::string name = s.name + suffix;
  Json ev = {{"apiVersion", "v1"},
             {"kind", "Event"},
             {"metadata", {{"name", name}, {"namespace", s.ns}}},
             {"involvedObject",
              {{"apiVersion", s.resource.ApiVersion()},
               {"kind", s.resource.kind},
               {"name", s.name},
               {"namespace", s.ns},
               {"uid", s.uid},
               {"resourceVersion", s.resource_version}}},
             {"reason", reason},
             {"message", msg},
             {"type", type},
             {"source", {{"component", component_}}},
             {"reportingComponent", component_},
             {"reportingInstance", instance_},
             {"firstTimestamp", now},
             {"lastTimestamp", now},
             {"count", 1}};
  if (auto r = client_->Create(kEvents, s.ns, ev); !r) {
    spdlog::warn("event not recorded object={}/{} reason={} err=\"{}\"", s.ns, s.name, reason,
                 r.error().message());
    return 0;
  }
  lru_.push_front(key);
  entries_[key] = {Entry{name, 1}, lru_.begin()};
  if (entries_.size() > max_entries_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  return 1;
}

}  // namespace modelswap::op
