// Opening a published version file (<root>/<model>/versions/<version>.msf) and checking that it
// is what its name says: a valid .msf whose header names the same model and version.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/msf/reader.h"

namespace modelswap {

struct VersionFileInfo {
  std::string path;
  uint64_t bytes = 0;
  std::string checksum;  // "xxh3:<hex>"
  uint64_t entry_count = 0;
};

// Maps the file (beneath root), verifies it in full (every checksum, the index), and checks its
// header's model and version against the names. kNotFound if missing, kCorruption on any failed
// check, kPermissionDenied for a symlink, kInvalidArgument for a file that is not regular.
[[nodiscard]] Result<VersionFileInfo> VerifyVersionFile(Env* env, std::string_view root,
                                                        std::string_view model,
                                                        std::string_view version);

// A mapped, verified .msf: the mapping and a Reader over it, kept together.
struct OpenedModelFile {
  std::unique_ptr<MappedFile> mapping;
  msf::Reader reader;
};
[[nodiscard]] Result<OpenedModelFile> OpenModelFile(Env* env, const std::string& path,
                                                    msf::VerifyLevel level);
// The same for `rel` beneath `root` (Env::OpenBeneath: no symlink followed, regular files only):
// how files on the model volume are opened.
[[nodiscard]] Result<OpenedModelFile> OpenModelFileBeneath(Env* env, const std::string& root,
                                                           const std::string& rel,
                                                           msf::VerifyLevel level);
// "<model>/versions/<version>.msf": a version file's path relative to the volume root.
std::string VersionRel(std::string_view model, std::string_view version);

}  // namespace modelswap

namespace modelswap {
// Deletes <root>/<model>/versions/<version>.msf. Refuses (kFailedPrecondition) while the
// manifest points at it, lists it in its chain (a layer under the active delta), or cannot be
// read (deleting blind could remove the active version).
// Returns false if the file was already gone.
[[nodiscard]] Result<bool> RemoveVersionFile(Env* env, std::string_view root,
                                             std::string_view model, std::string_view version);
}  // namespace modelswap
