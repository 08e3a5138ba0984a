// Name validation and the shared-volume layout.
#include "common/names.h"

#include <cstdlib>

#include "common/env.h"

namespace modelswap {
namespace {
bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsVersionChar(char c) {
  return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
}
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out + (s.size() > 80 ? "...\"" : "\"");
}
}  // namespace

Status ValidateModelName(std::string_view name) {
  if (name.empty() || name.size() > 63) {
    return Fail(Code::kInvalidArgument,
                "model name " + Quote(name) + " must be 1 to 63 characters (DNS-1123 label)");
  }
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '-') {
      return Fail(Code::kInvalidArgument,
                  "model name " + Quote(name) +
                      " may contain only lowercase letters, digits and '-' (DNS-1123 label)");
    }
  }
  if (name.front() == '-' || name.back() == '-') {
    return Fail(Code::kInvalidArgument,
                "model name " + Quote(name) + " must start and end with a letter or digit");
  }
  return Ok();
}

Status ValidateVersionName(std::string_view version) {
  if (version.empty() || version.size() > 63) {
    return Fail(Code::kInvalidArgument,
                "version " + Quote(version) + " must be 1 to 63 characters");
  }
  for (char c : version) {
    if (!IsVersionChar(c)) {
      return Fail(Code::kInvalidArgument,
                  "version " + Quote(version) + " may contain only [A-Za-z0-9._-]");
    }
  }
  if (version == "." || version == "..") {
    return Fail(Code::kInvalidArgument, "version " + Quote(version) + " is not a valid name");
  }
  return Ok();
}

Status ValidateShmObjectName(std::string_view kind, std::string_view name) {
  auto ok = [](char c, bool first) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return !first && (c == '.' || c == '_' || c == '-');
  };
  bool valid = !name.empty() && name.size() <= 63;
  for (size_t i = 0; valid && i < name.size(); ++i)
    valid = ok(name[i], i == 0);
  if (!valid) {
    return Fail(Code::kInvalidArgument, std::string(kind) + " name " + Quote(name) +
                                            " must match [A-Za-z0-9][A-Za-z0-9._-]{0,62}");
  }
  return Ok();
}

std::string ModelDir(std::string_view root, std::string_view model) {
  return JoinPath(root, model);
}
std::string ManifestPath(std::string_view root, std::string_view model) {
  return JoinPath(ModelDir(root, model), "manifest.json");
}
std::string VersionsDir(std::string_view root, std::string_view model) {
  return JoinPath(ModelDir(root, model), "versions");
}
std::string VersionFileName(std::string_view version) {
  return std::string(version) + ".msf";
}
std::string VersionPath(std::string_view root, std::string_view model, std::string_view version) {
  return JoinPath(VersionsDir(root, model), VersionFileName(version));
}
std::string VersionTempPrefix(std::string_view version) {
  return ".tmp-" + VersionFileName(version) + "-";
}

std::string ResolveShmDir(std::string_view configured) {
  if (!configured.empty()) return std::string(configured);
  if (const char* env = std::getenv("MODELSWAP_SHM_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return "/dev/shm/modelswap";
}

}  // namespace modelswap
