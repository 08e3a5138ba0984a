// Pod field validation; see pod_fields.h.
#include "operator/api/pod_fields.h"

#include <regex>
#include <set>

namespace modelswap::op {
namespace {

Status Invalid(std::string_view field, const std::string& msg) {
  return Fail(Code::kInvalidArgument, std::string(field) + ": " + msg);
}

bool IsDns1123Subdomain(std::string_view s) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  return !s.empty() && s.size() <= 253 && std::regex_match(s.begin(), s.end(), re);
}

// The name part of a qualified name and a non-empty label value share this rule.
bool IsQualifiedNamePart(std::string_view s) {
  static const std::regex re("^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$");
  return !s.empty() && s.size() <= 63 && std::regex_match(s.begin(), s.end(), re);
}

}  // namespace

Status ValidateObjectName(std::string_view name, std::string_view field) {
  if (!IsDns1123Subdomain(name)) {
    return Invalid(field, "\"" + std::string(name) +
                              "\" is not a DNS-1123 subdomain ([a-z0-9.-], <= 253 characters)");
  }
  return Ok();
}

Status ValidateLabelKey(std::string_view key, std::string_view field) {
  std::string_view name = key;
  if (size_t slash = key.find('/'); slash != std::string_view::npos) {
    if (!IsDns1123Subdomain(key.substr(0, slash))) {
      return Invalid(field, "key \"" + std::string(key) +
                                "\" has a prefix that is not a DNS-1123 "
                                "subdomain");
    }
    name = key.substr(slash + 1);
  }
  if (!IsQualifiedNamePart(name)) {
    return Invalid(field, "key \"" + std::string(key) +
                              "\" is not a qualified name ([prefix/]name; name <= 63 of "
                              "[A-Za-z0-9_.-], alphanumeric at both ends)");
  }
  return Ok();
}

Status ValidateLabelValue(std::string_view value, std::string_view field) {
  if (!value.empty() && !IsQualifiedNamePart(value)) {
    return Invalid(field, "value \"" + std::string(value) +
                              "\" is not a label value (<= 63 of [A-Za-z0-9_.-], alphanumeric at "
                              "both ends, or empty)");
  }
  return Ok();
}

Status ParseNodeSelectorEntry(std::string_view entry, std::map<std::string, std::string>* out) {
  const std::string field = "--writer-node-selector " + std::string(entry);
  size_t eq = entry.find('=');
  if (eq == std::string_view::npos) return Invalid(field, "expected KEY=VALUE");
  std::string key(entry.substr(0, eq)), value(entry.substr(eq + 1));
  MS_RETURN_IF_ERROR(ValidateLabelKey(key, field));
  MS_RETURN_IF_ERROR(ValidateLabelValue(value, field));
  if (!out->emplace(key, value).second) return Invalid(field, "key " + key + " given twice");
  return Ok();
}

Status ValidateTolerations(const Json& tolerations, std::string_view field) {
  if (!tolerations.is_array()) return Invalid(field, "must be a list of tolerations");
  static const std::set<std::string> kKeys = {"key", "operator", "value", "effect",
                                              "tolerationSeconds"};
  static const std::set<std::string> kEffects = {"", "NoSchedule", "PreferNoSchedule", "NoExecute"};
  for (size_t i = 0; i < tolerations.size(); ++i) {
    const Json& t = tolerations[i];
    const std::string at = std::string(field) + "[" + std::to_string(i) + "]";
    if (!t.is_object()) return Invalid(at, "must be a map");
    for (const auto& [k, v] : t.items()) {
      if (kKeys.count(k) == 0) {
        return Invalid(
            at, "unknown field \"" + k + "\" (key, operator, value, effect, tolerationSeconds)");
      }
      if (k == "tolerationSeconds" ? !v.is_number_integer() : !v.is_string()) {
        return Invalid(at + "." + k,
                       k == "tolerationSeconds" ? "must be an integer" : "must be a string");
      }
    }
    const std::string key = t.value("key", ""), op = t.value("operator", "Equal"),
                      value = t.value("value", ""), effect = t.value("effect", "");
    if (op != "Equal" && op != "Exists")
      return Invalid(at + ".operator", "must be Exists or Equal");
    if (!key.empty()) MS_RETURN_IF_ERROR(ValidateLabelKey(key, at + ".key"));
    if (key.empty() && op != "Exists") {
      return Invalid(at + ".operator", "must be Exists when key is empty (tolerate every taint)");
    }
    if (op == "Exists" && !value.empty()) {
      return Invalid(at + ".value", "must be empty when operator is Exists");
    }
    if (op == "Equal") MS_RETURN_IF_ERROR(ValidateLabelValue(value, at + ".value"));
    if (kEffects.count(effect) == 0) {
      return Invalid(at + ".effect", "must be NoSchedule, PreferNoSchedule, NoExecute or empty");
    }
    if (t.contains("tolerationSeconds") && effect != "NoExecute") {
      return Invalid(at + ".tolerationSeconds", "only applies with effect NoExecute");
    }
  }
  return Ok();
}

Status ValidateImagePullPolicy(std::string_view policy, std::string_view field) {
  if (policy != "Always" && policy != "IfNotPresent" && policy != "Never") {
    return Invalid(field, "\"" + std::string(policy) + "\" is not Always, IfNotPresent or Never");
  }
  return Ok();
}

}  // namespace modelswap::op
