// Verifying a version file against its name.
#include "sidecar/volume/version_file.h"

#include "common/names.h"

namespace modelswap {

Result<OpenedModelFile> OpenModelFile(Env* env, const std::string& path, msf::VerifyLevel level) {
  MS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapping, env->MapReadOnly(path));
  auto reader = msf::Reader::Open(mapping->bytes(), level);
  if (!reader) return Fail(reader.error().Context(path));
  return OpenedModelFile{std::move(mapping), std::move(*reader)};
}

Result<OpenedModelFile> OpenModelFileBeneath(Env* env, const std::string& root,
                                             const std::string& rel, msf::VerifyLevel level) {
  MS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapping, MapReadOnlyBeneath(env, root, rel));
  auto reader = msf::Reader::Open(mapping->bytes(), level);
  if (!reader) return Fail(reader.error().Context(mapping->path()));
  return OpenedModelFile{std::move(mapping), std::move(*reader)};
}

std::string VersionRel(std::string_view model, std::string_view version) {
  return std::string(model) + "/versions/" + VersionFileName(version);
}

Result<VersionFileInfo> VerifyVersionFile(Env* env, std::string_view root, std::string_view model,
                                          std::string_view version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  std::string path = VersionPath(root, model, version);
  MS_ASSIGN_OR_RETURN(OpenedModelFile file,
                      OpenModelFileBeneath(env, std::string(root), VersionRel(model, version),
                                           msf::VerifyLevel::kFull));
  const msf::Header& h = file.reader.header();
  if (h.model != model || h.version != version) {
    return Fail(Code::kCorruption, path + ": header names model \"" + h.model + "\" version \"" +
                                       h.version + "\", not its file name");
  }
  return VersionFileInfo{path, h.file_size, file.reader.checksum(), h.entry_count};
}

}  // namespace modelswap

#include "sidecar/volume/manifest.h"

namespace modelswap {

Result<bool> RemoveVersionFile(Env* env, std::string_view root, std::string_view model,
                               std::string_view version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  auto manifest = ReadManifest(env, root, model);
  if (manifest && manifest->version == version) {
    return Fail(Code::kFailedPrecondition,
                "version " + std::string(version) + " is the active version in the manifest");
  }
  // A layer under the active delta: agents map it for as long as that version serves. (Callers
  // also refuse any base a delta on the volume names, DeltasOn; this holds even where that
  // delta's own file is unreadable.)
  for (const ManifestLayer& layer : manifest ? manifest->chain : std::vector<ManifestLayer>{}) {
    if (layer.version == version) {
      return Fail(Code::kFailedPrecondition,
                  "version " + std::string(version) + " is a layer of the active version " +
                      manifest->version + " (its chain in the manifest)");
    }
  }
  if (!manifest && manifest.error().code() != Code::kNotFound) {
    return Fail(Code::kFailedPrecondition,
                "manifest unreadable, refusing to remove: " + manifest.error().message());
  }
  std::string path = VersionPath(root, model, version);
  auto removed = env->Remove(path);
  if (!removed && removed.error().code() == Code::kNotFound) return false;
  if (!removed) return Fail(removed.error());
  MS_RETURN_IF_ERROR(env->FsyncDir(VersionsDir(root, model)));
  return true;
}

}  // namespace modelswap
