// Reading an untrusted Pod's JSON (an AdmissionRequest's object) without exceptions: accessors
// that answer "absent" for a missing member or one of the wrong type, as the webhook's pieces
// (injection_patch.cc, node_cache_plan.cc, admission.cc) need them. The API server validated the
// pod's schema already, but the fuzzer (tests/fuzz) and a misconfigured caller do not, so nothing
// here assumes a shape.
//
// Thread safety: pure functions.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace modelswap::op::pod_json {

using Json = nlohmann::json;

// metadata.<field> as a string map; values that are not strings are skipped (the API server
// would have rejected them anyway).
std::map<std::string, std::string> StringMap(const Json& pod, const char* field);

// obj[key] when it is an array, else null.
const Json* ArrayAt(const Json& obj, const char* key);

// item["name"] when it is a string, else "".
std::string NameField(const Json& item);

// The first object in `list` (may be null) named `name`, else null.
const Json* FindByName(const Json* list, const std::string& name);

// metadata.namespace, "" when absent.
std::string PodNamespace(const Json& pod);

// "\"s\"": names in messages.
inline std::string Quote(const std::string& s) {
  return "\"" + s + "\"";
}

}  // namespace modelswap::op::pod_json
