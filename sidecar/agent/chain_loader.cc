// Loading a version as a chain (loader.h, LoadVersion): the version's own layer, then each layer
// its manifest's chain field names below it, shared with versions already loaded where possible,
// then the whole chain checked (sidecar/msf/chain.h) before anything of it is offered to apps.
#include <spdlog/spdlog.h>

#include "common/checksum.h"
#include "sidecar/agent/loader.h"
#include "sidecar/msf/chain.h"

namespace modelswap::agent {
namespace {

// The manifest a lower layer is loaded and checked against: its chain entry, in the version's
// model.
Manifest LayerManifest(const Manifest& top, const ManifestLayer& l) {
  Manifest m;
  m.model = top.model;
  m.version = l.version;
  m.file = l.file;
  m.checksum = l.checksum;
  m.bytes = l.bytes;
  m.recipe = l.recipe;
  return m;
}

// "base layer v7 (xxh3:..) of v8" for error messages: what operators know the layer by.
std::string LayerName(const Manifest& top, const ManifestLayer& l, size_t index,
                      size_t chain_size) {
  std::string role = index + 1 == chain_size ? "base layer " : "layer ";
  return role + l.version + " (" + l.checksum + ") of " + top.version;
}

// A layer already loaded that is exactly the one the chain entry names.
std::shared_ptr<LoadedVersion> FindLoaded(const std::vector<std::shared_ptr<LoadedVersion>>& loaded,
                                          const Manifest& want) {
  uint64_t checksum = 0;
  if (!ParseChecksum(want.checksum, &checksum)) return nullptr;
  for (const auto& l : loaded) {
    if (l && l->mapping && l->reader && !l->truncated && l->checksum == checksum &&
        l->manifest.model == want.model && l->manifest.version == want.version &&
        l->manifest.bytes == want.bytes) {
      return l;
    }
  }
  return nullptr;
}

// The chain's links, depths and model (msf::ValidateChain), and the version's header against
// the manifest: a delta must come with its chain field, a full version without one.
Status CheckChain(const LoadedVersion& v) {
  const msf::Header& h = v.header;
  if (h.delta && v.lower.empty()) {
    return Fail(Code::kFailedPrecondition,
                "version " + v.manifest.version + " is a delta on " + h.base_version + " (" +
                    FormatChecksum(h.base_checksum) +
                    ") but its manifest names no chain: it cannot be served alone");
  }
  std::vector<const msf::Reader*> readers{&*v.reader};
  for (const auto& l : v.lower)
    readers.push_back(&*l->reader);
  auto st = msf::ValidateChain(readers);
  if (!st) return Fail(st.error().Context("version " + v.manifest.version));
  return Ok();
}

}  // namespace

std::vector<std::shared_ptr<LoadedVersion>> LayersOf(const std::shared_ptr<LoadedVersion>& v) {
  std::vector<std::shared_ptr<LoadedVersion>> out{v};
  out.insert(out.end(), v->lower.begin(), v->lower.end());
  return out;
}

Result<std::shared_ptr<LoadedVersion>> LoadVersion(
    Env* env, const std::string& root, const Manifest& m, const LoadOptions& opt,
    const std::function<void(std::string)>& step,
    const std::vector<std::shared_ptr<LoadedVersion>>& loaded) {
  MS_ASSIGN_OR_RETURN(std::shared_ptr<LoadedVersion> v, LoadLayer(env, root, m, opt, step));
  for (size_t i = 0; i < m.chain.size(); ++i) {
    Manifest lm = LayerManifest(m, m.chain[i]);
    if (auto shared = FindLoaded(loaded, lm)) {
      v->lower.push_back(std::move(shared));
      v->layers_shared++;
      continue;
    }
    auto layer = LoadLayer(env, root, lm, opt, step);
    if (!layer) {
      return Fail(layer.error().Context(LayerName(m, m.chain[i], i, m.chain.size())));
    }
    v->layers_loaded += (*layer)->layers_loaded;
    v->lower.push_back(std::move(*layer));
  }
  MS_RETURN_IF_ERROR(CheckChain(*v));
  if (!v->lower.empty()) {
    spdlog::info("chain model={} version={} layers={} loaded={} shared={}", m.model, m.version,
                 v->layer_count(), v->layers_loaded, v->layers_shared);
  }
  return v;
}

}  // namespace modelswap::agent
