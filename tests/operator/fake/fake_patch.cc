// RFC 7386 merge patch and RFC 6902 JSON patch for the fake API server; see fake_apiserver.h.
#include <string>

#include "tests/operator/fake/fake_apiserver.h"

namespace modelswap::fake {

Json MergePatch(Json target, const Json& patch) {
  if (!patch.is_object()) return patch;
  if (!target.is_object()) target = Json::object();
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      target.erase(k);
    } else {
      target[k] = MergePatch(target.contains(k) ? target[k] : Json(), v);
    }
  }
  return target;
}

bool ApplyJsonPatch(Json& target, const Json& ops, std::string* error) {
  if (!ops.is_array()) {
    *error = "json patch is not an array";
    return false;
  }
  for (const auto& op : ops) {
    std::string kind = op.value("op", "");
    try {
      Json::json_pointer ptr(op.value("path", ""));
      if (kind == "test") {
        if (!target.contains(ptr) || target.at(ptr) != op["value"]) {
          *error = "testing value " + op.value("path", "") + " failed";
          return false;
        }
      } else if (kind == "remove") {
        if (!target.contains(ptr)) {
          *error = "unable to remove nonexistent key: " + op.value("path", "");
          return false;
        }
        Json& parent = target.at(ptr.parent_pointer());
        if (parent.is_array()) {
          parent.erase(std::stoul(ptr.back()));
        } else {
          parent.erase(ptr.back());
        }
      } else if (kind == "add" || kind == "replace") {
        Json& parent = target[ptr.parent_pointer()];
        if (parent.is_array()) {
          if (ptr.back() == "-") {
            parent.push_back(op["value"]);
          } else {
            parent.insert(parent.begin() + std::stol(ptr.back()), op["value"]);
          }
        } else {
          target[ptr] = op["value"];
        }
      } else {
        *error = "unsupported op " + kind;
        return false;
      }
    } catch (const std::exception& e) {
      *error = e.what();
      return false;
    }
  }
  return true;
}

}  // namespace modelswap::fake
