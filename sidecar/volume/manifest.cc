// Manifest encoding, checked decoding, reading, and publishing with claimed generations.
#include "sidecar/volume/manifest.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/msf/format.h"
#include "sidecar/volume/version_chain.h"
#include "sidecar/volume/version_file.h"

namespace modelswap {

// The chain field lists every layer of the longest chain the format allows but the top one.
static_assert(kMaxManifestChain == msf::kMaxChainLayers - 1);

namespace {

using nlohmann::json;

std::unexpected<Error> Corrupt(std::string what) {
  return Fail(Code::kCorruption, "manifest: " + std::move(what));
}

json ToJsonWithoutChecksum(const Manifest& m) {
  json j{{"model", m.model},
         {"version", m.version},
         {"file", m.file},
         {"bytes", m.bytes},
         {"checksum", m.checksum},
         {"generation", m.generation},
         {"published_at", m.published_at}};
  // Only when present: a manifest without it hashes exactly as before the field existed.
  if (!m.recipe.empty()) j["recipe"] = m.recipe;
  if (!m.chain.empty()) {  // likewise: full versions' manifests keep their old checksums
    json chain = json::array();
    for (const ManifestLayer& l : m.chain) {
      json e{
          {"version", l.version}, {"file", l.file}, {"checksum", l.checksum}, {"bytes", l.bytes}};
      if (!l.recipe.empty()) e["recipe"] = l.recipe;
      chain.push_back(std::move(e));
    }
    j["chain"] = std::move(chain);
  }
  return j;
}

// One chain entry's shape and names; `at` is "chain[i]" for messages.
Result<ManifestLayer> LayerFromJson(const json& e, const std::string& at) {
  if (!e.is_object()) return Corrupt(at + " is not an object");
  for (const char* key : {"version", "file", "checksum"}) {
    if (!e.contains(key) || !e[key].is_string())
      return Corrupt(at + "." + key + " missing or not a string");
  }
  if (!e.contains("bytes") || !e["bytes"].is_number_unsigned()) {
    return Corrupt(at + ".bytes missing or not an unsigned integer");
  }
  ManifestLayer l;
  l.version = e["version"].get<std::string>();
  l.file = e["file"].get<std::string>();
  l.checksum = e["checksum"].get<std::string>();
  l.bytes = e["bytes"].get<uint64_t>();
  if (auto st = ValidateVersionName(l.version); !st) {
    return Corrupt(at + ": " + st.error().message());
  }
  const std::string named = at + " (" + l.version + ")";
  if (l.file != "versions/" + VersionFileName(l.version)) {
    return Corrupt(named + ": file \"" + l.file + "\" is not versions/<version>.msf");
  }
  uint64_t unused;
  if (!ParseChecksum(l.checksum, &unused)) {
    return Corrupt(named + ": checksum is not xxh3:<16 hex digits>");
  }
  if (e.contains("recipe")) {
    if (!e["recipe"].is_string()) return Corrupt(named + ": recipe is not a string");
    l.recipe = e["recipe"].get<std::string>();
    if (l.recipe != RecipeFieldFor(l.version)) {
      return Corrupt(named + ": recipe \"" + l.recipe + "\" is not versions/<version>.recipe");
    }
  }
  return l;
}

// The chain field: 1..kMaxManifestChain well-formed layers, each version once and none the
// manifest's own (a chain naming a version twice would be a cycle).
Result<std::vector<ManifestLayer>> ChainFromJson(const json& j, const std::string& top) {
  if (!j.is_array()) return Corrupt("chain is not an array");
  if (j.empty()) return Corrupt("chain is empty (a full version has no chain field)");
  if (j.size() > kMaxManifestChain) {
    return Corrupt("chain has " + std::to_string(j.size()) + " layers below the version (at most " +
                   std::to_string(kMaxManifestChain) + ")");
  }
  std::vector<ManifestLayer> chain;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string at = "chain[" + std::to_string(i) + "]";
    MS_ASSIGN_OR_RETURN(ManifestLayer l, LayerFromJson(j[i], at));
    if (l.version == top) return Corrupt(at + " names the version itself (" + top + ")");
    for (const ManifestLayer& earlier : chain) {
      if (earlier.version == l.version) return Corrupt(at + " names " + l.version + " twice");
    }
    chain.push_back(std::move(l));
  }
  return chain;
}

Result<Manifest> FromJson(const json& j) {
  Manifest m;
  for (const char* key : {"model", "version", "file", "checksum", "published_at"}) {
    if (!j.contains(key) || !j[key].is_string())
      return Corrupt(std::string(key) + " missing or not a string");
  }
  for (const char* key : {"bytes", "generation"}) {
    if (!j.contains(key) || !j[key].is_number_unsigned()) {
      return Corrupt(std::string(key) + " missing or not an unsigned integer");
    }
  }
  m.model = j["model"].get<std::string>();
  m.version = j["version"].get<std::string>();
  m.file = j["file"].get<std::string>();
  m.checksum = j["checksum"].get<std::string>();
  m.published_at = j["published_at"].get<std::string>();
  m.bytes = j["bytes"].get<uint64_t>();
  m.generation = j["generation"].get<uint64_t>();
  if (auto st = ValidateModelName(m.model); !st) return Corrupt(st.error().message());
  if (auto st = ValidateVersionName(m.version); !st) return Corrupt(st.error().message());
  if (m.file != "versions/" + VersionFileName(m.version)) {
    return Corrupt("file \"" + m.file + "\" is not versions/<version>.msf");
  }
  uint64_t unused;
  if (!ParseChecksum(m.checksum, &unused)) return Corrupt("checksum is not xxh3:<16 hex digits>");
  if (m.generation == 0) return Corrupt("generation must be at least 1");
  if (j.contains("recipe")) {
    if (!j["recipe"].is_string()) return Corrupt("recipe is not a string");
    m.recipe = j["recipe"].get<std::string>();
    if (m.recipe != RecipeFieldFor(m.version)) {
      return Corrupt("recipe \"" + m.recipe + "\" is not versions/<version>.recipe");
    }
  }
  if (j.contains("chain")) {
    MS_ASSIGN_OR_RETURN(m.chain, ChainFromJson(j["chain"], m.version));
  }
  return m;
}

// WriteFileAtomic with the temp file opened beneath root, so a symlinked model directory cannot
// send the manifest's bytes elsewhere: temp, fsync, rename over manifest.json, fsync the dir.
Status WriteManifestBeneath(Env* env, std::string_view root, std::string_view model,
                            std::string_view text) {
  const std::string tmp_rel = std::string(model) + "/.tmp-manifest.json-" +
                              std::to_string(::getpid()) + "-" +
                              std::to_string(env->NowUnixNanos());
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(std::string(root), tmp_rel, OpenMode::kCreateNew));
  Status st = env->PWrite(fd, std::as_bytes(std::span(text)), 0);
  if (st) st = env->Fsync(fd);
  env->Close(fd);
  const std::string tmp = JoinPath(root, tmp_rel);
  if (st) st = env->Rename(tmp, ManifestPath(root, model));
  if (!st) {
    (void)env->Remove(tmp);
    return st;
  }
  return env->FsyncDir(ModelDir(root, model));
}

std::string ManifestRel(std::string_view model) {
  return std::string(model) + "/manifest.json";
}

std::string ClaimsRel(std::string_view model) {
  return std::string(model) + "/generations";
}

std::string ClaimName(uint64_t generation) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(generation));
  return name;
}

// Errors that mean the manifest's bytes are unusable, not that reading failed: publishing
// replaces such a manifest (a retried I/O error might still read a good one, so it fails).
bool Broken(Code code) {
  return code == Code::kCorruption || code == Code::kInvalidArgument ||
         code == Code::kPermissionDenied;
}

// Claimed generations, ascending. Names that are not 20 digits are ignored (not ours).
Result<std::vector<uint64_t>> ListClaims(Env* env, std::string_view root, std::string_view model) {
  auto names = env->ListDir(JoinPath(root, ClaimsRel(model)));
  if (!names && names.error().code() == Code::kNotFound) return std::vector<uint64_t>{};
  if (!names) return Fail(names.error().Context("publish: listing generation claims"));
  std::vector<uint64_t> out;
  for (const std::string& name : *names) {
    if (name.size() != 20 || name.find_first_not_of("0123456789") != std::string::npos) continue;
    out.push_back(std::stoull(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Creates generations/<g> for the first g >= from that nobody claimed (O_EXCL), durably.
Result<uint64_t> ClaimGeneration(Env* env, std::string_view root, std::string_view model,
                                 uint64_t from) {
  for (uint64_t g = from; g < from + 64; ++g) {
    const std::string rel = ClaimsRel(model) + "/" + ClaimName(g);
    auto fd = env->OpenBeneath(std::string(root), rel, OpenMode::kCreateNew);
    if (!fd && fd.error().code() == Code::kNotFound) {
      // generations/ is missing. Created only now, after OpenBeneath found no symlink on the way
      // (that is kPermissionDenied), so a symlinked model directory gets nothing created in it.
      MS_RETURN_IF_ERROR(env->CreateDirs(JoinPath(root, ClaimsRel(model))));
      fd = env->OpenBeneath(std::string(root), rel, OpenMode::kCreateNew);
    }
    if (!fd && fd.error().code() == Code::kAlreadyExists) continue;
    if (!fd) return Fail(fd.error().Context("publish: claiming generation " + std::to_string(g)));
    Status st = env->Fsync(*fd);
    env->Close(*fd);
    MS_RETURN_IF_ERROR(st);
    MS_RETURN_IF_ERROR(env->FsyncDir(JoinPath(root, ClaimsRel(model))));
    return g;
  }
  return Fail(Code::kAborted, "publish: generations " + std::to_string(from) + ".." +
                                  std::to_string(from + 63) + " are all claimed already");
}

// Keeps the newest kKeptGenerationClaims claims; the highest is never removed.
void PruneClaims(Env* env, std::string_view root, std::string_view model, uint64_t newest) {
  auto claims = ListClaims(env, root, model);
  if (!claims || claims->size() <= static_cast<size_t>(kKeptGenerationClaims)) return;
  for (size_t i = 0; i + kKeptGenerationClaims < claims->size(); ++i) {
    if ((*claims)[i] >= newest) break;
    (void)env->Remove(JoinPath(root, ClaimsRel(model) + "/" + ClaimName((*claims)[i])));
  }
}

}  // namespace

std::string FormatRfc3339(int64_t unix_nanos) {
  std::time_t secs = static_cast<std::time_t>(unix_nanos / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string EncodeManifest(const Manifest& m) {
  json j = ToJsonWithoutChecksum(m);
  j["manifest_checksum"] = FormatChecksum(Xxh3(j.dump()));
  return j.dump(2) + "\n";
}

Result<Manifest> DecodeManifest(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corrupt("not valid JSON (torn or partly copied?)");
  if (!j.is_object()) return Corrupt("not a JSON object");
  if (!j.contains("manifest_checksum") || !j["manifest_checksum"].is_string()) {
    return Corrupt("manifest_checksum missing");
  }
  std::string claimed = j["manifest_checksum"].get<std::string>();
  j.erase("manifest_checksum");
  if (FormatChecksum(Xxh3(j.dump())) != claimed) return Corrupt("manifest_checksum mismatch");
  return FromJson(j);
}

Result<Manifest> ReadManifest(Env* env, std::string_view root, std::string_view model,
                              uint64_t held_generation) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  std::string path = ManifestPath(root, model);
  MS_ASSIGN_OR_RETURN(std::string text,
                      ReadFileBeneath(env, std::string(root), ManifestRel(model), 1 << 20));
  auto manifest = DecodeManifest(text);
  if (!manifest) return Fail(manifest.error().Context(path));
  if (manifest->model != model) {
    return Fail(Code::kCorruption, path + ": names model \"" + manifest->model + "\"");
  }
  if (manifest->generation < held_generation) {
    return Fail(Code::kFailedPrecondition,
                path + ": generation " + std::to_string(manifest->generation) +
                    " is older than the held generation " + std::to_string(held_generation));
  }
  return manifest;
}

Result<uint64_t> HighestClaimedGeneration(Env* env, std::string_view root, std::string_view model) {
  MS_ASSIGN_OR_RETURN(std::vector<uint64_t> claims, ListClaims(env, root, model));
  return claims.empty() ? 0 : claims.back();
}

std::string RecipeFieldFor(std::string_view version) {
  return "versions/" + std::string(version) + ".recipe";
}

Result<Manifest> PublishVersion(Env* env, std::string_view root, std::string_view model,
                                std::string_view version) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  MS_ASSIGN_OR_RETURN(VersionFileInfo info, VerifyVersionFile(env, root, model, version));
  // A delta's layers below it: headers checked against each link, not verified in full (a base
  // can be the size of the model; it was verified when it was published, and agents verify
  // every layer before serving it).
  MS_ASSIGN_OR_RETURN(std::vector<ChainLayer> layers, ResolveChain(env, root, model, version));
  if (layers.front().checksum != info.checksum) {
    return Fail(Code::kAborted, "publish: " + info.path + " changed while it was checked");
  }
  Manifest m;
  m.model = std::string(model);
  m.version = std::string(version);
  m.file = "versions/" + VersionFileName(version);
  m.bytes = info.bytes;
  m.checksum = info.checksum;
  m.chain = ManifestChainOf(layers);
  return PublishManifest(env, root, std::move(m));
}

Result<Manifest> PublishManifest(Env* env, std::string_view root, Manifest m) {
  const std::string model = m.model, version = m.version;
  // The same checks a reader will make, so nothing is published that every agent would refuse.
  m.generation = 1;
  m.published_at = FormatRfc3339(env->NowUnixNanos());
  if (auto ok = FromJson(ToJsonWithoutChecksum(m)); !ok) {
    return Fail(Code::kInvalidArgument, "publish: " + ok.error().message());
  }
  MS_ASSIGN_OR_RETURN(uint64_t floor, HighestClaimedGeneration(env, root, model));
  auto current = ReadManifest(env, root, model);
  uint64_t next = floor + 1;
  if (current) {
    next = std::max(next, current->generation + 1);
  } else if (Broken(current.error().code())) {
    next = std::max(next, static_cast<uint64_t>(env->NowUnixNanos() / 1'000'000'000));
    spdlog::warn("publish model={} current manifest unreadable ({}); publishing over it", model,
                 current.error().message());
  } else if (current.error().code() != Code::kNotFound) {
    return Fail(current.error().Context("publish: reading the current manifest"));
  }
  MS_ASSIGN_OR_RETURN(m.generation, ClaimGeneration(env, root, model, next));
  if (current && current->generation < floor) {
    spdlog::warn(
        "publish model={} manifest generation={} is older than the highest claimed "
        "generation={} (a stale or rolled-back copy); publishing above the claim",
        model, current->generation, floor);
  }
  MS_RETURN_IF_ERROR(WriteManifestBeneath(env, root, model, EncodeManifest(m)));
  PruneClaims(env, root, model, m.generation);
  spdlog::info("publish model={} version={} generation={}{}{}", model, version, m.generation,
               m.recipe.empty() ? "" : " chunked",
               m.chain.empty() ? "" : " delta, layers below=" + std::to_string(m.chain.size()));
  return m;
}

}  // namespace modelswap
