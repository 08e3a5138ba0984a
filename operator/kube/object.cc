// Accessors and time helpers for Kubernetes objects; see object.h.
#include "operator/kube/object.h"

#include <cstdio>
#include <ctime>

namespace modelswap::op {

bool HasFinalizer(const Json& o, const std::string& finalizer) {
  auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return false;
  auto f = m->find("finalizers");
  if (f == m->end() || !f->is_array()) return false;
  for (const auto& v : *f) {
    if (v.is_string() && v.get<std::string>() == finalizer) return true;
  }
  return false;
}

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

bool MatchesLabelSelector(const Json& obj, const std::string& selector) {
  size_t pos = 0;
  while (pos < selector.size()) {
    size_t comma = selector.find(',', pos);
    if (comma == std::string::npos) comma = selector.size();
    std::string term = selector.substr(pos, comma - pos);
    pos = comma + 1;
    if (term.empty()) continue;
    auto eq = term.find('=');
    if (eq == std::string::npos) {  // bare key: "exists"
      if (LabelOf(obj, term).empty()) return false;
      continue;
    }
    std::string key = term.substr(0, eq);
    std::string value = term.substr(term.compare(eq, 2, "==") == 0 ? eq + 2 : eq + 1);
    if (LabelOf(obj, key) != value) return false;
  }
  return true;
}

std::string FormatTime(int64_t unix_nanos) {
  std::time_t secs = static_cast<std::time_t>(unix_nanos / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatMicroTime(int64_t unix_nanos) {
  std::time_t secs = static_cast<std::time_t>(unix_nanos / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06dZ",
                static_cast<int>((unix_nanos % 1'000'000'000) / 1000));
  return buf;
}

int64_t ParseTime(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t nanos = static_cast<int64_t>(timegm(&tm)) * 1'000'000'000;
  size_t i = static_cast<size_t>(consumed);
  if (i < text.size() && text[i] == '.') {
    int64_t scale = 100'000'000;
    for (++i; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      nanos += (text[i] - '0') * scale;
      scale /= 10;
    }
  }
  if (i >= text.size() || text[i] != 'Z') return -1;  // the API server always writes UTC
  return nanos;
}

}  // namespace modelswap::op
