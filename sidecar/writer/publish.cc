// Publishing and removing versions of either layout.
#include "sidecar/writer/publish.h"

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/volume/version_chain.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/chunked_upload.h"

namespace modelswap {
namespace {

// Whether <model>/versions/<version>.recipe exists (beneath root: a symlink there is an error).
Result<bool> HasRecipe(Env* env, const std::string& root, const std::string& model,
                       const std::string& version) {
  auto fd = env->OpenBeneath(root, chunk::RecipeRel(model, version), OpenMode::kRead);
  if (!fd && fd.error().code() == Code::kNotFound) return false;
  if (!fd) return Fail(fd.error());
  env->Close(*fd);
  return true;
}

}  // namespace

Result<Manifest> PublishAnyVersion(Env* env, const std::string& root, const std::string& model,
                                   const std::string& version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  MS_ASSIGN_OR_RETURN(bool chunked, HasRecipe(env, root, model, version));
  if (!chunked) return PublishVersion(env, root, model, version);
  MS_ASSIGN_OR_RETURN(chunk::Recipe recipe, CheckChunkedVersion(env, root, model, version));
  // The header (from its first chunks) and, for a delta, every lower layer's header checked
  // against its link.
  MS_ASSIGN_OR_RETURN(std::vector<ChainLayer> layers, ResolveChain(env, root, model, version));
  if (layers.front().checksum != FormatChecksum(recipe.msf_checksum)) {
    return Fail(Code::kAborted, "publish: the recipe of " + model + "/" + version +
                                    " changed while it was checked");
  }
  Manifest m;
  m.model = model;
  m.version = version;
  m.file = "versions/" + VersionFileName(version);
  m.bytes = recipe.file_bytes;
  m.checksum = FormatChecksum(recipe.msf_checksum);
  m.recipe = RecipeFieldFor(version);
  m.chain = ManifestChainOf(layers);
  return PublishManifest(env, root, std::move(m));
}

Result<bool> RemoveAnyVersion(Env* env, const std::string& root, const std::string& model,
                              const std::string& version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  // A delta on the volume needs this version as its base: removing it would leave that delta
  // (maybe the active version) unloadable.
  MS_ASSIGN_OR_RETURN(std::vector<std::string> deltas, DeltasOn(env, root, model, version));
  if (!deltas.empty()) {
    std::string names;
    for (const std::string& d : deltas)
      names += (names.empty() ? "" : ", ") + d;
    return Fail(Code::kFailedPrecondition,
                version + " is the base of delta " + names + ": remove or compact " +
                    (deltas.size() == 1 ? deltas[0] : std::string("them")) + " first");
  }
  // Refuses while the manifest names the version, whatever the layout.
  MS_ASSIGN_OR_RETURN(bool removed_file, RemoveVersionFile(env, root, model, version));
  MS_ASSIGN_OR_RETURN(bool chunked, HasRecipe(env, root, model, version));
  if (!chunked) return removed_file;
  MS_RETURN_IF_ERROR(
      env->Remove(JoinPath(VersionsDir(root, model), chunk::RecipeFileName(version))));
  MS_RETURN_IF_ERROR(env->FsyncDir(VersionsDir(root, model)));
  return true;
}

}  // namespace modelswap
