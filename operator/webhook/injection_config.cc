// Injection settings and annotation parsing; see injection_config.h.
#include "operator/webhook/injection_config.h"

#include <charconv>
#include <cmath>
#include <set>

#include "common/names.h"
#include "operator/api/well_known.h"
#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

// Quotes a user value for an error message: printable ASCII only, at most 80 bytes.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out + (s.size() > 80 ? "...\"" : "\"");
}

Error BadAnnotation(std::string_view key, std::string_view value, std::string_view problem) {
  return Error(Code::kInvalidArgument,
               "annotation " + std::string(key) + ": " + Quote(value) + " " + std::string(problem));
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

// Consumes [+-]?(digits[.digits?]|.digits) from the front of s; false if there is no number.
bool ConsumeSignedNumber(std::string_view& s, std::string& out) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && IsDigit(s[i]))
    ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i]))
      ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return false;
  out.assign(s.substr(0, i));
  s.remove_prefix(i);
  return true;
}

double Multiplier(std::string_view suffix, bool& ok) {
  static const std::pair<std::string_view, double> kSuffixes[] = {
      {"", 1},        {"n", 1e-9},    {"u", 1e-6},    {"m", 1e-3},   {"k", 1e3},     {"M", 1e6},
      {"G", 1e9},     {"T", 1e12},    {"P", 1e15},    {"E", 1e18},   {"Ki", 0x1p10}, {"Mi", 0x1p20},
      {"Gi", 0x1p30}, {"Ti", 0x1p40}, {"Pi", 0x1p50}, {"Ei", 0x1p60}};
  for (const auto& [name, mult] : kSuffixes) {
    if (suffix == name) {
      ok = true;
      return mult;
    }
  }
  ok = false;
  return 0;
}

Result<std::string> PositiveQuantity(const std::map<std::string, std::string>& ann, const char* key,
                                     const std::string& fallback) {
  auto it = ann.find(key);
  if (it == ann.end()) return fallback;
  auto q = ParseQuantity(it->second);
  if (!q)
    return Fail(BadAnnotation(key, it->second, "is not a Kubernetes quantity (e.g. 250m, 1Gi)"));
  if (!(*q > 0)) return Fail(BadAnnotation(key, it->second, "must be greater than zero"));
  return it->second;
}

Status CheckLimit(const std::string& request, const std::string& limit, const char* key) {
  if (request.empty() || limit.empty()) return Ok();
  auto r = ParseQuantity(request);
  auto l = ParseQuantity(limit);
  if (r && l && *l < *r) {
    return Fail(BadAnnotation(key, limit, "is below the request " + Quote(request)));
  }
  return Ok();
}

Result<std::vector<std::string>> ParseModels(const std::map<std::string, std::string>& ann) {
  auto it = ann.find(kAnnotationModels);
  if (it == ann.end() || it->second.empty()) {
    return Fail(Code::kInvalidArgument, std::string("annotation ") + kAnnotationModels +
                                            " is required with " + kAnnotationInject +
                                            ": \"true\" (a comma-separated list of model names)");
  }
  std::vector<std::string> models;
  std::set<std::string> seen;
  std::string_view rest = it->second;
  while (true) {
    size_t comma = rest.find(',');
    std::string name(rest.substr(0, comma));
    // Tolerate "a, b": spaces around names are a common way to write lists.
    while (!name.empty() && name.front() == ' ')
      name.erase(0, 1);
    while (!name.empty() && name.back() == ' ')
      name.pop_back();
    if (auto st = ValidateModelName(name); !st) {
      return Fail(
          BadAnnotation(kAnnotationModels, it->second, "is invalid: " + st.error().message()));
    }
    if (!seen.insert(name).second) {
      return Fail(
          BadAnnotation(kAnnotationModels, it->second, "lists model " + Quote(name) + " twice"));
    }
    models.push_back(name);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return models;
}

}  // namespace

Result<double> ParseQuantity(std::string_view text) {
  std::string_view s = text;
  std::string number;
  if (!ConsumeSignedNumber(s, number)) {
    return Fail(Code::kInvalidArgument,
                "quantity " + Quote(text) + " does not start with a number");
  }
  std::string_view digits = number;
  if (digits.front() == '+') digits.remove_prefix(1);  // from_chars takes no '+'
  double value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) {
    return Fail(Code::kInvalidArgument, "quantity " + Quote(text) + " has a bad number");
  }
  // An e/E after the number is a decimal exponent ("1e3"), except for the suffixes "E" (exa) and
  // "Ei" (exbi), which the API grammar also allows (apimachinery resource.Quantity).
  if (!s.empty() && (s[0] == 'e' || s[0] == 'E') && s.size() > 1 && s != "Ei") {
    std::string_view exp_text = s.substr(1);
    std::string exponent;
    if (ConsumeSignedNumber(exp_text, exponent) && exp_text.empty() &&
        exponent.find('.') == std::string::npos) {
      return value * std::pow(10.0, std::strtod(exponent.c_str(), nullptr));
    }
    // "E" alone is the exa suffix; anything else after e/E is malformed.
    if (s != "E") {
      return Fail(Code::kInvalidArgument, "quantity " + Quote(text) + " has a bad exponent");
    }
  }
  bool ok = false;
  double mult = Multiplier(s, ok);
  if (!ok) {
    return Fail(Code::kInvalidArgument,
                "quantity " + Quote(text) + " has an unknown suffix " + Quote(s) +
                    " (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)");
  }
  return value * mult;
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || ptr == text.data() || n < 0) {
    return Fail(Code::kInvalidArgument,
                "duration " + Quote(text) + " does not start with a number");
  }
  std::string_view unit(ptr, text.data() + text.size() - ptr);
  int64_t scale = 0;
  if (unit.empty() || unit == "ms")
    scale = 1;
  else if (unit == "s")
    scale = 1000;
  else if (unit == "m")
    scale = 60'000;
  else if (unit == "h")
    scale = 3'600'000;
  else {
    return Fail(Code::kInvalidArgument,
                "duration " + Quote(text) + " has an unknown unit (use ms, s, m or h)");
  }
  if (n > INT64_MAX / scale) {
    return Fail(Code::kInvalidArgument, "duration " + Quote(text) + " is too large");
  }
  return n * scale;
}

Status ValidateImageReference(std::string_view image) {
  if (image.empty() || image.size() > 512) {
    return Fail(Code::kInvalidArgument, "image " + Quote(image) + " must be 1 to 512 characters");
  }
  for (char c : image) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return Fail(Code::kInvalidArgument,
                  "image " + Quote(image) + " contains whitespace or a control character");
    }
  }
  if (image.front() == '-') {
    return Fail(Code::kInvalidArgument, "image " + Quote(image) + " starts with '-'");
  }
  return Ok();
}

Status ValidateDnsSubdomain(std::string_view name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || IsDigit(c); };
  bool ok = !name.empty() && name.size() <= 253 && alnum(name.front()) && alnum(name.back());
  for (char c : name)
    ok = ok && (alnum(c) || c == '-' || c == '.');
  if (!ok) {
    return Fail(Code::kInvalidArgument,
                "name " + Quote(name) +
                    " is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
                    "starting and ending with a letter or digit, at most 253 characters)");
  }
  return Ok();
}

Status ValidateByteSize(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && IsDigit(text[digits]))
    ++digits;
  std::string_view suffix = text.substr(digits);
  bool ok = digits > 0 && digits <= 18 &&
            (suffix.empty() || suffix == "Ki" || suffix == "Mi" || suffix == "Gi" ||
             suffix == "Ti" || suffix == "Pi");
  if (!ok) {
    return Fail(Code::kInvalidArgument,
                "byte size " + Quote(text) +
                    " must be digits with an optional Ki, Mi, Gi, Ti or Pi suffix (e.g. 20Gi)");
  }
  return Ok();
}

namespace {

Status ValidateMountPath(const std::string& path, const char* what) {
  if (path.size() < 2 || path[0] != '/' || path.find("..") != std::string::npos ||
      path.back() == '/') {
    return Fail(Code::kInvalidArgument, std::string(what) + " " + Quote(path) +
                                            " must be an absolute path without .. or a trailing /");
  }
  return Ok();
}

// The cache settings: paths absolute and apart from the other mounts, sizes readable by both
// Kubernetes and the agent.
Status ValidateCacheConfig(const InjectionConfig& c) {
  if (!c.node_cache_host_path.empty()) {
    MS_RETURN_IF_ERROR(ValidateMountPath(c.node_cache_host_path, "node cache host path"));
    MS_RETURN_IF_ERROR(ValidateMountPath(c.cache_dir, "cache dir"));
    if (auto st = ValidateByteSize(c.node_cache_max_bytes); !st) {
      return Fail(st.error().Context("node cache max bytes"));
    }
  }
  if (!c.stage_dir.empty()) {
    MS_RETURN_IF_ERROR(ValidateMountPath(c.stage_dir, "stage dir"));
    if (auto st = ValidateByteSize(c.per_pod_cache_max_bytes); !st) {
      return Fail(st.error().Context("per-pod cache max bytes"));
    }
  }
  std::vector<std::string> paths = {c.model_root, c.shm_dir};
  if (!c.node_cache_host_path.empty()) paths.push_back(c.cache_dir);
  if (!c.stage_dir.empty()) paths.push_back(c.stage_dir);
  for (size_t i = 0; i < paths.size(); ++i) {
    for (size_t j = i + 1; j < paths.size(); ++j) {
      const std::string &a = paths[i], &b = paths[j];
      if (a == b || b.starts_with(a + "/") || a.starts_with(b + "/")) {
        return Fail(Code::kInvalidArgument, "mount paths " + Quote(a) + " and " + Quote(b) +
                                                " overlap: the injected volumes need their own");
      }
    }
  }
  return Ok();
}

}  // namespace

Status ValidateConfig(const InjectionConfig& c) {
  if (auto st = ValidateImageReference(c.agent_image); !st) {
    return Fail(st.error().Context("agent image"));
  }
  if (auto st = ValidateDnsSubdomain(c.claim_name); !st) {
    return Fail(st.error().Context("model claim name"));
  }
  for (const auto& [path, what] : {std::pair{c.model_root, "model root"}, {c.shm_dir, "shm dir"}}) {
    if (path.size() < 2 || path[0] != '/' || path.find("..") != std::string::npos) {
      return Fail(Code::kInvalidArgument,
                  std::string(what) + " " + Quote(path) + " must be an absolute path without ..");
    }
  }
  if (c.model_root == c.shm_dir) {
    return Fail(Code::kInvalidArgument, "model root and shm dir must differ");
  }
  if (c.agent_port < 1 || c.agent_port > 65535) {
    return Fail(Code::kInvalidArgument,
                "agent port " + std::to_string(c.agent_port) + " out of range");
  }
  if (c.poll_interval_ms < 1 || c.poll_interval_ms > 3'600'000) {
    return Fail(Code::kInvalidArgument, "poll interval must be 1 ms to 1 h");
  }
  MS_RETURN_IF_ERROR(ValidateCacheConfig(c));
  for (const std::string* q : {&c.cpu_request, &c.memory_request, &c.cpu_limit, &c.memory_limit,
                               &c.shm_size, &c.stage_size}) {
    if (q->empty()) continue;
    auto v = ParseQuantity(*q);
    if (!v) return Fail(v.error().Context("injection config"));
    if (!(*v > 0)) return Fail(Code::kInvalidArgument, "quantity " + Quote(*q) + " must be > 0");
  }
  if (c.startup_period_seconds < 1 || c.startup_failure_threshold < 1) {
    return Fail(Code::kInvalidArgument, "startup probe period and threshold must be >= 1");
  }
  if (c.wait_command.empty() || c.wait_command[0].empty()) {
    return Fail(Code::kInvalidArgument, "wait command must not be empty");
  }
  return Ok();
}

InjectRequest WantsInjection(const std::map<std::string, std::string>& annotations,
                             const std::map<std::string, std::string>& labels) {
  auto it = annotations.find(kAnnotationInject);
  if (it != annotations.end()) {
    if (it->second == "true") return InjectRequest::kInject;
    if (it->second == "false") return InjectRequest::kNone;
    return InjectRequest::kInvalid;
  }
  auto l = labels.find(kAnnotationInject);
  return l != labels.end() && l->second == "true" ? InjectRequest::kInject : InjectRequest::kNone;
}

Result<PodSettings> ParsePodSettings(const std::map<std::string, std::string>& ann,
                                     const InjectionConfig& cfg) {
  PodSettings s;
  MS_ASSIGN_OR_RETURN(s.models, ParseModels(ann));
  for (size_t i = 0; i < s.models.size(); ++i)
    s.models_csv += (i ? "," : "") + s.models[i];
  s.agent_image = cfg.agent_image;
  if (auto it = ann.find(kAnnotationAgentImage); it != ann.end()) {
    if (auto st = ValidateImageReference(it->second); !st) {
      return Fail(
          BadAnnotation(kAnnotationAgentImage, it->second, "is not a valid image reference"));
    }
    s.agent_image = it->second;
  }
  MS_ASSIGN_OR_RETURN(s.cpu_request, PositiveQuantity(ann, kAnnotationAgentCpu, cfg.cpu_request));
  MS_ASSIGN_OR_RETURN(s.memory_request,
                      PositiveQuantity(ann, kAnnotationAgentMemory, cfg.memory_request));
  MS_ASSIGN_OR_RETURN(s.cpu_limit, PositiveQuantity(ann, kAnnotationAgentCpuLimit, cfg.cpu_limit));
  MS_ASSIGN_OR_RETURN(s.memory_limit,
                      PositiveQuantity(ann, kAnnotationAgentMemoryLimit, cfg.memory_limit));
  MS_RETURN_IF_ERROR(CheckLimit(s.cpu_request, s.cpu_limit, kAnnotationAgentCpuLimit));
  MS_RETURN_IF_ERROR(CheckLimit(s.memory_request, s.memory_limit, kAnnotationAgentMemoryLimit));
  MS_ASSIGN_OR_RETURN(s.shm_size, PositiveQuantity(ann, kAnnotationShmSize, cfg.shm_size));
  s.poll_interval_ms = cfg.poll_interval_ms;
  if (auto it = ann.find(kAnnotationPollInterval); it != ann.end()) {
    auto ms = ParseDurationMs(it->second);
    if (!ms)
      return Fail(
          BadAnnotation(kAnnotationPollInterval, it->second, "is not a duration (e.g. 500ms, 2s)"));
    if (*ms < 1 || *ms > 3'600'000) {
      return Fail(BadAnnotation(kAnnotationPollInterval, it->second, "must be between 1ms and 1h"));
    }
    s.poll_interval_ms = *ms;
  }
  s.claim_name = cfg.claim_name;
  if (auto it = ann.find(kAnnotationClaimName); it != ann.end()) {
    if (auto st = ValidateDnsSubdomain(it->second); !st) {
      return Fail(BadAnnotation(kAnnotationClaimName, it->second,
                                "is not a valid PersistentVolumeClaim name (DNS-1123 subdomain)"));
    }
    s.claim_name = it->second;
  }
  return s;
}

std::vector<std::string> UnknownModelswapAnnotations(
    const std::map<std::string, std::string>& annotations) {
  static const std::set<std::string> kKnown = {
      kAnnotationInject,           kAnnotationModels,       kAnnotationAgentImage,
      kAnnotationAgentCpu,         kAnnotationAgentMemory,  kAnnotationAgentCpuLimit,
      kAnnotationAgentMemoryLimit, kAnnotationPollInterval, kAnnotationShmSize,
      kAnnotationClaimName,        kAnnotationGeneration,   kLabelInjected,
      kAnnotationNodeCache};
  std::vector<std::string> unknown;
  for (const auto& [key, value] : annotations) {
    if (key.starts_with("modelswap.io/") && !kKnown.contains(key)) unknown.push_back(key);
  }
  return unknown;
}

}  // namespace modelswap::op
