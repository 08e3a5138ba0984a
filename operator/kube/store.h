// Store: the reflector's in-memory cache of one resource type, keyed "ns/name".
//
// One writer (its Reflector) and any number of readers. A relist swaps the whole set in at once
// (Replace), so readers never see half of an old list and half of a new one; HasSynced() turns
// true at the first Replace and gates readiness: acting on an empty, unsynced cache would
// recreate Jobs that exist. Objects are shared immutable JSON, so Get/List are cheap. An
// optional index (e.g. "ns/model" from a label) lets the reconciler fetch one model's objects
// without scanning everything. Reads may be stale by the watch's latency: the API server, not
// the cache, decides conflicts (resourceVersion preconditions).
//
// Thread safety: all methods are safe from any thread (one mutex; readers copy pointers out).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "operator/kube/object.h"

namespace modelswap::op {

using ObjectPtr = std::shared_ptr<const Json>;

class Store {
 public:
  // index_fn maps an object to its index value ("" = not indexed).
  using IndexFn = std::function<std::string(const Json&)>;
  explicit Store(IndexFn index_fn = nullptr) : index_fn_(std::move(index_fn)) {}

  // Swaps in a full list; returns the objects that changed (old, new) so the caller can notify.
  struct Change {
    ObjectPtr old_obj;  // null: added
    ObjectPtr new_obj;  // null: deleted
  };
  std::vector<Change> Replace(std::vector<Json> items, const std::string& resource_version);
  // Applies one watch event; returns the change (both null for a no-op, e.g. an event older than
  // the object the operator itself wrote and stored with UpsertIfNewer).
  Change Upsert(Json obj);
  Change Delete(const Json& obj);
  // Stores an object the operator just wrote (the API's answer) unless the cache already holds
  // a newer resourceVersion, so the next pass does not act on the version it replaced.
  void UpsertIfNewer(Json obj);
  void SetResourceVersion(const std::string& rv);

  ObjectPtr Get(const std::string& key) const;
  std::vector<ObjectPtr> List() const;
  std::vector<ObjectPtr> ByIndex(const std::string& value) const;
  bool HasSynced() const;
  std::string resource_version() const;
  size_t size() const;

 private:
  void IndexLocked(const std::string& key, const ObjectPtr& old_obj, const ObjectPtr& new_obj);

  IndexFn index_fn_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, ObjectPtr> items_;
  std::unordered_map<std::string, std::set<std::string>> index_;
  std::string rv_;
  bool synced_ = false;
};

}  // namespace modelswap::op
