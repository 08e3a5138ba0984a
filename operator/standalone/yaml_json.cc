// YAML to JSON; see yaml_json.h.
#include "operator/standalone/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <regex>

namespace modelswap::op {
namespace {

Json Scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  static const std::regex int_re("^[-+]?[0-9]+$");
  static const std::regex float_re("^[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$");
  if (std::regex_match(s, int_re)) {
    int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  if (std::regex_match(s, float_re)) return std::stod(s);
  return s;
}

Json Convert(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return Scalar(n);
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& item : n)
        a.push_back(Convert(item));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n)
        o[kv.first.as<std::string>()] = Convert(kv.second);
      return o;
    }
  }
  return nullptr;
}

}  // namespace

Result<std::vector<Json>> YamlToJson(const std::string& text) {
  try {
    std::vector<Json> docs;
    for (const auto& node : YAML::LoadAll(text)) {
      if (node.IsNull()) continue;
      docs.push_back(Convert(node));
    }
    return docs;
  } catch (const YAML::Exception& e) {
    return Fail(Code::kInvalidArgument, std::string("YAML: ") + e.what());
  }
}

}  // namespace modelswap::op
