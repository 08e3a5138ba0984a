// Recipe checks and assembling a chunked version in the node cache (see chunked_source.h).
#include "sidecar/agent/chunked_source.h"

#include "common/checksum.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::agent {

Status CheckRecipeMatchesManifest(const chunk::Recipe& r, const Manifest& m) {
  uint64_t want = 0;
  if (!ParseChecksum(m.checksum, &want)) {
    return Fail(Code::kCorruption, "manifest checksum \"" + m.checksum + "\" is malformed");
  }
  if (r.model != m.model || r.version != m.version) {
    return Fail(Code::kCorruption, "recipe names " + r.model + "/" + r.version +
                                       ", manifest names " + m.model + "/" + m.version);
  }
  if (r.file_bytes != m.bytes) {
    return Fail(Code::kCorruption, "recipe describes " + std::to_string(r.file_bytes) +
                                       " bytes, manifest says " + std::to_string(m.bytes));
  }
  if (r.msf_checksum != want) {
    return Fail(Code::kCorruption, "recipe checksum " + FormatChecksum(r.msf_checksum) +
                                       " differs from the manifest's " + m.checksum);
  }
  return Ok();
}

Result<cache::Assembled> AssembleChunked(Env* env, const std::string& root, const Manifest& m,
                                         const cache::CacheOptions& options,
                                         const std::function<void(std::string)>& step) {
  const std::string what = "chunked version " + m.version;
  if (options.dir.empty()) {
    return Fail(Code::kFailedPrecondition, what + ": this agent has no cache directory");
  }
  // The manifest's recipe field is validated by DecodeManifest; the path is built from the
  // names, never taken from the field, so nothing else on the volume can be named.
  if (m.recipe != RecipeFieldFor(m.version)) {
    return Fail(Code::kCorruption, what + ": manifest recipe \"" + m.recipe + "\" is not " +
                                       RecipeFieldFor(m.version));
  }
  if (step) step("read recipe " + m.version);
  auto recipe = chunk::ReadRecipeBeneath(env, root, chunk::RecipeRel(m.model, m.version));
  if (!recipe) return Fail(recipe.error().Context(what));
  if (auto st = CheckRecipeMatchesManifest(*recipe, m); !st) return Fail(st.error().Context(what));

  // ChunkStore::Get and GetDelta verify each chunk's length and SHA-256 (kCorruption naming its
  // hex, and its base's for a delta); the chunk cache fetches a corrupt chunk once more before
  // failing.
  cache::ChunkSourceFn fetch =
      cache::ChunkStoreSource(std::make_shared<chunk::ChunkStore>(env, root));
  // Progress comes once per chunk; only a phase change is worth a step update (it takes the
  // worker's mutex, which /v1/status also takes).
  std::string phase;
  cache::ProgressFn progress = [&](const cache::AssembleProgress& p) {
    if (!step || p.phase == phase) return;
    phase = std::string(p.phase);
    step("assemble " + m.version + ": " + phase);
  };
  if (step) step("assemble " + m.version);
  auto assembled = cache::Assemble(env, options, *recipe, fetch, progress);
  if (!assembled) return Fail(assembled.error().Context(what));
  return assembled;
}

}  // namespace modelswap::agent
