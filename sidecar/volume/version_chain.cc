// Reading layers' headers in either layout and following a delta's base references.
#include "sidecar/volume/version_chain.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/msf/format.h"
#include "sidecar/volume/version_file.h"

namespace modelswap {
namespace {

// msf::ParseHeaderPage runs every header check on the header page alone, against the size the
// file has (or, chunked, the recipe says it has).
Result<msf::Header> ParseHeaderPage(std::span<const std::byte> page, uint64_t file_size,
                                    const std::string& what) {
  auto h = msf::ParseHeaderPage(page, file_size);
  if (!h) return Fail(h.error().Context(what));
  return h;
}

// The first kHeaderSize bytes of a whole .msf on the volume, and its size.
Result<msf::Header> ReadWholeHeader(Env* env, const std::string& root, const std::string& rel) {
  const std::string path = JoinPath(root, rel);
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, rel, OpenMode::kRead));
  std::vector<std::byte> page(msf::kHeaderSize);
  uint64_t got = 0;
  Status st = Ok();
  auto info = env->StatFd(fd);
  if (!info) st = Fail(info.error().Context(path));
  while (st && got < page.size()) {
    auto n = env->PRead(fd, std::span(page).subspan(got), got);
    if (!n) st = Fail(n.error().Context(path));
    if (!n || *n == 0) break;
    got += *n;
  }
  env->Close(fd);
  MS_RETURN_IF_ERROR(st);
  return ParseHeaderPage(std::span(page).first(got), info->size, path);
}

// The header of a chunked version: the chunks covering [0, kHeaderSize), each read through the
// store (which checks its SHA-256; GetEntry reads a delta chunk's base too), then the recipe's
// own claims about the file.
Result<msf::Header> ReadChunkedHeader(Env* env, const std::string& root,
                                      const chunk::Recipe& recipe, const std::string& what) {
  std::vector<std::byte> page(msf::kHeaderSize);
  chunk::ChunkStore store(env, root);
  std::vector<std::byte> buffer;
  for (const chunk::RecipeChunk& c : recipe.chunks) {
    if (c.offset >= page.size()) break;  // entries are contiguous from 0 (DecodeRecipe)
    const uint64_t n = std::min<uint64_t>(c.length, page.size() - c.offset);
    if (c.hole) continue;  // zeros, as the page already is
    buffer.resize(c.length);
    if (Status st = store.GetEntry(c, buffer); !st) {
      // A chunk the recipe names but the store lacks: the version is damaged, not absent (a
      // caller reading kNotFound as "no such version" would call its base missing, or let it go).
      if (st.error().code() == Code::kNotFound) {
        const std::string base =
            c.delta ? " (a delta against " + chunk::ToHex(c.base_hash) + ")" : "";
        return Fail(Code::kCorruption,
                    what + ": chunk " + chunk::ToHex(c.hash) + base +
                        " of its header is missing from the store: " + st.error().message());
      }
      return Fail(st.error().Context(what));
    }
    std::memcpy(page.data() + c.offset, buffer.data(), n);
  }
  MS_ASSIGN_OR_RETURN(msf::Header h, ParseHeaderPage(page, recipe.file_bytes, what));
  if (h.header_checksum != recipe.msf_checksum) {
    return Fail(Code::kCorruption, what + ": its chunks make a header with checksum " +
                                       FormatChecksum(h.header_checksum) + ", the recipe names " +
                                       FormatChecksum(recipe.msf_checksum));
  }
  return h;
}

struct ReadLayer {
  msf::Header header;
  bool chunked = false;
};

// A version's header, whichever layout it has (a recipe wins, as in publish and the agent).
Result<ReadLayer> ReadLayerHeader(Env* env, std::string_view root_view, std::string_view model,
                                  std::string_view version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  const std::string root(root_view);
  ReadLayer out;
  auto recipe = chunk::ReadRecipeBeneath(env, root, chunk::RecipeRel(model, version));
  if (recipe) {
    out.chunked = true;
    const std::string what = JoinPath(root, chunk::RecipeRel(model, version));
    if (recipe->model != model || recipe->version != version) {
      return Fail(Code::kCorruption, what + ": names " + recipe->model + "/" + recipe->version);
    }
    MS_ASSIGN_OR_RETURN(out.header, ReadChunkedHeader(env, root, *recipe, what));
  } else if (recipe.error().code() == Code::kNotFound) {
    MS_ASSIGN_OR_RETURN(out.header, ReadWholeHeader(env, root, VersionRel(model, version)));
  } else {
    return Fail(recipe.error());
  }
  if (out.header.model != model || out.header.version != version) {
    return Fail(Code::kCorruption, JoinPath(root, VersionRel(model, version)) +
                                       ": header names model \"" + out.header.model +
                                       "\" version \"" + out.header.version +
                                       "\", not its file name");
  }
  return out;
}

ChainLayer LayerOf(const ReadLayer& r) {
  const msf::Header& h = r.header;
  ChainLayer l;
  l.version = h.version;
  l.checksum = FormatChecksum(h.header_checksum);
  l.bytes = h.file_size;
  l.file = "versions/" + VersionFileName(h.version);
  if (r.chunked) l.recipe = RecipeFieldFor(h.version);
  l.delta = h.delta;
  if (h.delta) {
    l.base_version = h.base_version;
    l.base_checksum = FormatChecksum(h.base_checksum);
    l.chain_depth = h.chain_depth;
  }
  return l;
}

// Depths as the layers' positions say: the base is 0, each delta one more than the layer below.
Status CheckDepths(std::string_view model, const std::vector<ChainLayer>& layers) {
  const size_t n = layers.size();
  for (size_t i = 0; i + 1 < n; ++i) {
    const uint32_t expected = static_cast<uint32_t>(n - 1 - i);
    if (layers[i].chain_depth != expected) {
      return Fail(Code::kCorruption, "chain of " + std::string(model) + "/" + layers[0].version +
                                         ": delta " + layers[i].version + " says chain depth " +
                                         std::to_string(layers[i].chain_depth) + " but lies " +
                                         std::to_string(expected) +
                                         " delta(s) above its full base " + layers.back().version);
    }
  }
  return Ok();
}

}  // namespace

Result<msf::Header> ReadVersionHeader(Env* env, std::string_view root, std::string_view model,
                                      std::string_view version) {
  MS_ASSIGN_OR_RETURN(ReadLayer r, ReadLayerHeader(env, root, model, version));
  return std::move(r.header);
}

Result<std::vector<ChainLayer>> ResolveChain(Env* env, std::string_view root,
                                             std::string_view model, std::string_view version) {
  std::vector<ChainLayer> layers;
  std::set<std::string> seen;
  std::string name(version);
  while (true) {
    const ChainLayer* above = layers.empty() ? nullptr : &layers.back();
    if (layers.size() == msf::kMaxChainLayers) {
      return Fail(Code::kFailedPrecondition,
                  "chain of " + std::string(model) + "/" + std::string(version) +
                      " has more than " + std::to_string(msf::kMaxChainLayers) + " layers: delta " +
                      above->version + " still names base " + name + " (the limit is " +
                      std::to_string(msf::kMaxChainDeltas) + " deltas on a full version)");
    }
    if (!seen.insert(name).second) {
      return Fail(Code::kCorruption, "chain of " + std::string(model) + "/" + std::string(version) +
                                         " is a cycle: delta " + above->version + " names " + name +
                                         ", which is above it in the chain");
    }
    auto read = ReadLayerHeader(env, root, model, name);
    if (!read && above) {
      const std::string need =
          "delta " + above->version + " needs base " + name + " (" + above->base_checksum + ")";
      if (read.error().code() == Code::kNotFound) {
        return Fail(Code::kFailedPrecondition, need + ", which is missing");
      }
      return Fail(read.error().Context(need));
    }
    if (!read) return Fail(read.error());
    ChainLayer layer = LayerOf(*read);
    if (above && layer.checksum != above->base_checksum) {
      return Fail(Code::kCorruption, "delta " + above->version + " needs base " + name + " " +
                                         above->base_checksum + ", but " + name +
                                         " on the volume is " + layer.checksum +
                                         " (another version under that name)");
    }
    const bool delta = layer.delta;
    name = layer.base_version;
    layers.push_back(std::move(layer));
    if (!delta) break;
  }
  MS_RETURN_IF_ERROR(CheckDepths(model, layers));
  return layers;
}

Result<std::vector<std::string>> DeltasOn(Env* env, std::string_view root, std::string_view model,
                                          std::string_view version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  auto names = env->ListDir(VersionsDir(root, model));
  if (!names && names.error().code() == Code::kNotFound) return std::vector<std::string>{};
  if (!names) return Fail(names.error().Context("listing the versions of " + std::string(model)));
  std::set<std::string> candidates;
  for (const std::string& file : *names) {
    if (file.starts_with(".")) continue;  // writers' temps
    for (std::string_view ext : {std::string_view(".msf"), std::string_view(".recipe")}) {
      if (file.size() > ext.size() && file.ends_with(ext)) {
        std::string v = file.substr(0, file.size() - ext.size());
        if (v != version && ValidateVersionName(v)) candidates.insert(std::move(v));
      }
    }
  }
  std::vector<std::string> out;
  for (const std::string& v : candidates) {
    auto read = ReadLayerHeader(env, root, model, v);
    if (!read && read.error().code() == Code::kNotFound) continue;  // removed meanwhile
    if (!read && read.error().code() == Code::kCorruption) {
      spdlog::warn("volume: skipping {}/{} while looking for deltas on {}: {}", model, v, version,
                   read.error().message());
      continue;
    }
    if (!read) return Fail(read.error());
    if (read->header.delta && read->header.base_version == version) out.push_back(v);
  }
  return out;  // sorted: candidates is a set
}

std::vector<ManifestLayer> ManifestChainOf(const std::vector<ChainLayer>& layers) {
  std::vector<ManifestLayer> out;
  for (size_t i = 1; i < layers.size(); ++i) {
    const ChainLayer& l = layers[i];
    out.push_back(ManifestLayer{l.version, l.file, l.checksum, l.bytes, l.recipe});
  }
  return out;
}

std::string FormatChain(const std::vector<ChainLayer>& layers) {
  std::string out;
  for (const ChainLayer& l : layers) {
    if (!out.empty()) out += " -> ";
    out += l.version + " (" + (l.delta ? "delta" : "full") + (l.recipe.empty() ? "" : ", chunked") +
           ", " + std::to_string(l.bytes) + " bytes)";
  }
  return out;
}

}  // namespace modelswap
