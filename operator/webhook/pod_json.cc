// Exception-free accessors on a Pod's JSON; see pod_json.h.
#include "operator/webhook/pod_json.h"

namespace modelswap::op::pod_json {

std::map<std::string, std::string> StringMap(const Json& pod, const char* field) {
  std::map<std::string, std::string> out;
  auto m = pod.find("metadata");
  if (m == pod.end() || !m->is_object()) return out;
  auto f = m->find(field);
  if (f == m->end() || !f->is_object()) return out;
  for (const auto& [k, v] : f->items())
    if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

const Json* ArrayAt(const Json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_array() ? &*it : nullptr;
}

std::string NameField(const Json& item) {
  auto it = item.find("name");
  return it != item.end() && it->is_string() ? it->get<std::string>() : "";
}

const Json* FindByName(const Json* list, const std::string& name) {
  if (list == nullptr) return nullptr;
  for (const auto& item : *list)
    if (item.is_object() && NameField(item) == name) return &item;
  return nullptr;
}

std::string PodNamespace(const Json& pod) {
  auto meta = pod.find("metadata");
  if (meta == pod.end() || !meta->is_object()) return "";
  auto ns = meta->find("namespace");
  return ns != meta->end() && ns->is_string() ? ns->get<std::string>() : "";
}

}  // namespace modelswap::op::pod_json
