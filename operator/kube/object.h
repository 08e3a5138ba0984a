// Small accessors for Kubernetes objects held as JSON, and RFC 3339 time helpers.
//
// Objects stay nlohmann::json from the wire to the cache: the operator reads a handful of
// fields and must keep the rest intact when it writes an object back. These accessors never
// throw: a missing or mistyped field reads as empty/zero. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace modelswap::op {

using Json = nlohmann::json;

// Reads obj[a][b]... as T, or `fallback` if any step is missing or of another type.
template <class T>
T Field(const Json& obj, std::initializer_list<const char*> path, T fallback = T{}) {
  const Json* cur = &obj;
  for (const char* key : path) {
    if (!cur->is_object()) return fallback;
    auto it = cur->find(key);
    if (it == cur->end()) return fallback;
    cur = &*it;
  }
  if constexpr (std::is_same_v<T, std::string>) {
    return cur->is_string() ? cur->get<std::string>() : fallback;
  } else if constexpr (std::is_same_v<T, bool>) {
    return cur->is_boolean() ? cur->get<bool>() : fallback;
  } else if constexpr (std::is_arithmetic_v<T>) {
    return cur->is_number() ? cur->get<T>() : fallback;
  } else {
    return cur->template get<T>();
  }
}

inline std::string NameOf(const Json& o) {
  return Field<std::string>(o, {"metadata", "name"});
}
inline std::string NamespaceOf(const Json& o) {
  return Field<std::string>(o, {"metadata", "namespace"});
}
inline std::string UidOf(const Json& o) {
  return Field<std::string>(o, {"metadata", "uid"});
}
inline std::string ResourceVersionOf(const Json& o) {
  return Field<std::string>(o, {"metadata", "resourceVersion"});
}
inline int64_t GenerationOf(const Json& o) {
  return Field<int64_t>(o, {"metadata", "generation"});
}
inline bool IsBeingDeleted(const Json& o) {
  return !Field<std::string>(o, {"metadata", "deletionTimestamp"}).empty();
}
inline std::string LabelOf(const Json& o, const std::string& key) {
  const Json* labels = nullptr;
  if (auto m = o.find("metadata"); m != o.end() && m->is_object()) {
    if (auto l = m->find("labels"); l != m->end() && l->is_object()) labels = &*l;
  }
  if (labels == nullptr) return "";
  auto it = labels->find(key);
  return it != labels->end() && it->is_string() ? it->get<std::string>() : "";
}
inline std::string AnnotationOf(const Json& o, const std::string& key) {
  auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return "";
  auto a = m->find("annotations");
  if (a == m->end() || !a->is_object()) return "";
  auto it = a->find(key);
  return it != a->end() && it->is_string() ? it->get<std::string>() : "";
}
bool HasFinalizer(const Json& o, const std::string& finalizer);

// "ns/name" (or "name" when ns is empty): the key of the caches and the work queue.
inline std::string KeyOf(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}
inline std::string KeyOf(const Json& o) {
  return KeyOf(NamespaceOf(o), NameOf(o));
}
// Splits "ns/name"; a key without '/' has an empty namespace.
std::pair<std::string, std::string> SplitKey(const std::string& key);

// Whether `labels` satisfies an equality-only selector "a=b,c=d" (the only kind the operator
// builds). An empty selector matches everything.
bool MatchesLabelSelector(const Json& obj, const std::string& selector);

// RFC 3339 in UTC: "2026-11-21T23:15:49Z" (metav1.Time) and, with micros, the MicroTime form
// "2026-11-21T23:16:05.123456Z" (Lease, events.k8s.io).
std::string FormatTime(int64_t unix_nanos);
std::string FormatMicroTime(int64_t unix_nanos);
// Parses either form (any number of fractional digits); -1 if malformed.
int64_t ParseTime(const std::string& text);

}  // namespace modelswap::op
