// Checks a Prometheus text exposition against the naming conventions modelswap follows
// (prometheus.io/docs/practices/naming): every family has a TYPE, names are modelswap_*, counters
// and only counters end in _total, units are base units spelled out (_seconds, _bytes), no
// milliseconds or kilobytes. Returns one line per problem (empty when the text is clean).
#pragma once

#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace modelswap::testing {

inline std::vector<std::string> LintMetrics(const std::string& text) {
  std::vector<std::string> problems;
  std::istringstream in(text);
  std::string line;
  static const std::regex type_re(R"(^# TYPE ([^ ]+) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex name_re(R"(^modelswap_[a-z0-9_]+$)");
  static const std::regex bad_unit_re(
      R"(_(ms|msec|millis|milliseconds|us|microseconds|ns|nanoseconds|kb|mb|gb|kib|mib|gib|kilobytes|megabytes|percent)(_|$))");
  int families = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, type_re)) continue;
    ++families;
    const std::string name = m[1], type = m[2];
    const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    if (!std::regex_match(name, name_re)) problems.push_back(name + ": not modelswap_[a-z0-9_]+");
    if (type == "counter" && !total) problems.push_back(name + ": a counter must end in _total");
    if (type != "counter" && total) problems.push_back(name + ": only counters end in _total");
    if (std::regex_search(name, bad_unit_re)) problems.push_back(name + ": use base units");
    if (type == "untyped") problems.push_back(name + ": untyped");
  }
  if (families == 0) problems.push_back("no metric families (no # TYPE lines)");
  return problems;
}

}  // namespace modelswap::testing
