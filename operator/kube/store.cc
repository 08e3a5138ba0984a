// The reflector's cache; see store.h.
#include "operator/kube/store.h"

#include <cstdlib>

namespace modelswap::op {

void Store::IndexLocked(const std::string& key, const ObjectPtr& old_obj,
                        const ObjectPtr& new_obj) {
  if (!index_fn_) return;
  std::string old_v = old_obj ? index_fn_(*old_obj) : "";
  std::string new_v = new_obj ? index_fn_(*new_obj) : "";
  if (old_v == new_v) return;
  if (!old_v.empty()) {
    auto it = index_.find(old_v);
    if (it != index_.end()) {
      it->second.erase(key);
      if (it->second.empty()) index_.erase(it);
    }
  }
  if (!new_v.empty()) index_[new_v].insert(key);
}

std::vector<Store::Change> Store::Replace(std::vector<Json> items, const std::string& rv) {
  std::unordered_map<std::string, ObjectPtr> fresh;
  for (auto& item : items) {
    std::string key = KeyOf(item);
    fresh[key] = std::make_shared<const Json>(std::move(item));
  }
  std::lock_guard lock(mu_);
  std::vector<Change> changes;
  for (auto& [key, obj] : fresh) {
    auto it = items_.find(key);
    ObjectPtr old_obj = it == items_.end() ? nullptr : it->second;
    if (!old_obj || ResourceVersionOf(*old_obj) != ResourceVersionOf(*obj)) {
      changes.push_back({old_obj, obj});
    }
    IndexLocked(key, old_obj, obj);
  }
  for (auto& [key, obj] : items_) {
    if (fresh.count(key) == 0) {
      changes.push_back({obj, nullptr});
      IndexLocked(key, obj, nullptr);
    }
  }
  items_.swap(fresh);
  rv_ = rv;
  synced_ = true;
  return changes;
}

Store::Change Store::Upsert(Json obj) {
  std::string key = KeyOf(obj);
  std::string rv = ResourceVersionOf(obj);
  auto ptr = std::make_shared<const Json>(std::move(obj));
  std::lock_guard lock(mu_);
  ObjectPtr& slot = items_[key];
  if (slot && UidOf(*slot) == UidOf(*ptr) &&
      std::strtoull(ResourceVersionOf(*slot).c_str(), nullptr, 10) >
          std::strtoull(rv.c_str(), nullptr, 10)) {
    // The operator's own write (UpsertIfNewer) is already here; this event is an older state of
    // the same object on its way through the watch. Acting on it would redo that write (and, with
    // a resourceVersion precondition, earn a 409).
    if (!rv.empty()) rv_ = rv;
    return {};
  }
  Change change{slot, ptr};
  IndexLocked(key, slot, ptr);
  slot = ptr;
  if (!rv.empty()) rv_ = rv;
  return change;
}

Store::Change Store::Delete(const Json& obj) {
  std::string key = KeyOf(obj);
  std::lock_guard lock(mu_);
  std::string rv = ResourceVersionOf(obj);
  if (!rv.empty()) rv_ = rv;
  auto it = items_.find(key);
  if (it == items_.end()) return {};
  Change change{it->second, nullptr};
  IndexLocked(key, it->second, nullptr);
  items_.erase(it);
  return change;
}

void Store::UpsertIfNewer(Json obj) {
  std::string key = KeyOf(obj);
  uint64_t rv = std::strtoull(ResourceVersionOf(obj).c_str(), nullptr, 10);
  auto ptr = std::make_shared<const Json>(std::move(obj));
  std::lock_guard lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return;  // deleted meanwhile: the watch knows better
  // resourceVersions are etcd revisions: comparing them is what the watch cache itself does.
  if (std::strtoull(ResourceVersionOf(*it->second).c_str(), nullptr, 10) >= rv) return;
  IndexLocked(key, it->second, ptr);
  it->second = ptr;
}

void Store::SetResourceVersion(const std::string& rv) {
  std::lock_guard lock(mu_);
  rv_ = rv;
}

ObjectPtr Store::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Store::List() const {
  std::lock_guard lock(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(items_.size());
  for (const auto& [key, obj] : items_)
    out.push_back(obj);
  return out;
}

std::vector<ObjectPtr> Store::ByIndex(const std::string& value) const {
  std::lock_guard lock(mu_);
  std::vector<ObjectPtr> out;
  auto it = index_.find(value);
  if (it == index_.end()) return out;
  for (const auto& key : it->second) {
    auto obj = items_.find(key);
    if (obj != items_.end()) out.push_back(obj->second);
  }
  return out;
}

bool Store::HasSynced() const {
  std::lock_guard lock(mu_);
  return synced_;
}

std::string Store::resource_version() const {
  std::lock_guard lock(mu_);
  return rv_;
}

size_t Store::size() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

}  // namespace modelswap::op
