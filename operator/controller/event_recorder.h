// EventRecorder: core/v1 Events for ModelVersions (and injected Pods: NodeCacheDisabled,
// kube_backend.h), aggregated like client-go's event recorder.
//
// An Event identical to one recorded before (same object uid, type, reason and message: client-go's
// EventCorrelator key, tools/record/events_cache.go) is not created again: the existing Event's
// count goes up and its lastTimestamp moves, by a merge patch without a resourceVersion, as
// v1.32/event-core-v1-create-409-series.http records it (201, then PATCH count 2 + lastTimestamp
// -> 200). An Event whose patch finds it gone (404: Events expire after the API server's
// --event-ttl, 1 h by default) is created anew. Names are <object>.<unix nanos in hex>, as
// client-go's. Not done: client-go's aggregation of similar Events with different messages, and its
// spam filter. Events are best effort: a failure is logged, never returned.
//
// Thread safety: Record may be called from any thread (one mutex held across the API call, so the
// counts of one Event never go backwards).
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "operator/kube/client.h"

namespace modelswap::op {

struct EventSubject {
  ResourceRef resource;
  std::string ns, name, uid, resource_version;
};

class EventRecorder {
 public:
  EventRecorder(KubeClient* client, std::string component, std::string instance,
                size_t max_entries = 4096);

  // type Normal|Warning. Returns the count the Event now has (0: not recorded).
  int Record(const EventSubject& subject, const std::string& type, const std::string& reason,
             const std::string& message, int64_t now_unix_ns);

 private:
  struct Entry {
    std::string name;
    int count = 0;
  };
  KubeClient* client_;
  std::string component_, instance_;
  size_t max_entries_;
  std::mutex mu_;
  std::list<std::string> lru_;  // front = most recent key
  std::unordered_map<std::string, std::pair<Entry, std::list<std::string>::iterator>> entries_;
};

}  // namespace modelswap::op
