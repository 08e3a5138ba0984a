// Validation of the names users give (model, version), before any of them touches a path.
//
// A model name is a DNS-1123 label (it also names Jobs and labels): [a-z0-9]([-a-z0-9]*[a-z0-9])?,
// at most 63 bytes. A version matches [A-Za-z0-9._-]{1,63} and is not "." or "..", so
// "<root>/<model>/versions/<version>.msf" can never leave the model's directory.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace modelswap {

[[nodiscard]] Status ValidateModelName(std::string_view name);
[[nodiscard]] Status ValidateVersionName(std::string_view version);
// Names of channels and regions in the shm dir ("channel", "region" in `kind`):
// [A-Za-z0-9][A-Za-z0-9._-]{0,62}, so "<shm-dir>/<kind>s/<name>.<kind>" stays inside its folder.
[[nodiscard]] Status ValidateShmObjectName(std::string_view kind, std::string_view name);

// The shared-volume layout (docs/design.md, "Formats"). Callers validate names first.
// The app-side shm dir: `configured` if not empty, else $MODELSWAP_SHM_DIR (set by the webhook
// in injected pods), else /dev/shm/modelswap (the agent's default).
std::string ResolveShmDir(std::string_view configured);

std::string ModelDir(std::string_view root, std::string_view model);
std::string ManifestPath(std::string_view root, std::string_view model);
std::string VersionsDir(std::string_view root, std::string_view model);
std::string VersionFileName(std::string_view version);  // "<version>.msf"
std::string VersionPath(std::string_view root, std::string_view model, std::string_view version);
// Prefix of the writer's scratch files for one version: "<versions>/.tmp-<version>.msf-".
std::string VersionTempPrefix(std::string_view version);

}  // namespace modelswap
