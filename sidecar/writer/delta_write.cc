// Checking a delta write's request and resolving the chain it joins.
#include "sidecar/writer/delta_write.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/msf/format.h"
#include "sidecar/writer/compaction.h"
#include "sidecar/writer/progress.h"

namespace modelswap {
namespace {

Status CheckRequest(const WriteRequest& req) {
  auto bad = [](std::string what) { return Fail(Code::kInvalidArgument, std::move(what)); };
  if (req.max_chain < 1 || req.max_chain > msf::kMaxChainDeltas) {
    return bad("max chain " + std::to_string(req.max_chain) + " is not in 1.." +
               std::to_string(msf::kMaxChainDeltas));
  }
  if (!(req.compact_ratio > 0) || !std::isfinite(req.compact_ratio)) {
    return bad("compact ratio must be a positive number");
  }
  if (req.delta_on.empty()) {
    if (req.compact || req.auto_compact) return bad("compaction needs the version to fold");
    return Ok();
  }
  MS_RETURN_IF_ERROR(ValidateVersionName(req.delta_on));
  if (req.delta_on == req.version) return bad("a delta cannot be its own base");
  if (req.compact && req.auto_compact) return bad("compact and auto-compact both asked");
  if (!req.base_version.empty()) return bad("a delta write takes no --base layout");
  const bool tsv = std::holds_alternative<TsvSource>(req.source);
  const bool none = std::holds_alternative<NoChanges>(req.source);
  if (!tsv && !(none && req.compact)) {
    return bad("a delta's changes come from a TSV file (key<TAB>value, key<TAB>\\N deletes)");
  }
  return Ok();
}

using writer_steps::BuildInto;
using writer_steps::BuildNotes;

// Copies the built file at `path` into fd (both node-local or fd on the volume; a delta is small
// next to its base, so a second write of it costs little).
Status CopyInto(Env* env, const std::string& path, int fd) {
  MS_ASSIGN_OR_RETURN(int in, env->Open(path, OpenMode::kRead));
  std::vector<std::byte> block(4 << 20);
  Status st = Ok();
  for (uint64_t offset = 0;;) {
    auto n = env->PRead(in, block, offset);
    if (!n) {
      st = Fail(n.error());
      break;
    }
    if (*n == 0) break;
    st = env->PWrite(fd, std::span(block).first(*n), offset);
    if (!st) break;
    offset += *n;
  }
  env->Close(in);
  return st;
}

// Folds plan's chain, with the changes built at changes_path (a delta on the chain's top; "" =
// none) as the newest layer, into fd as a full version.
Result<msf::BuildResult> Compact(Env* env, const WriteRequest& req, const DeltaPlan& plan,
                                 const std::string& changes_path, int fd) {
  MS_ASSIGN_OR_RETURN(
      OpenedChain chain,
      OpenedChain::Open(env, req.root, req.model, plan.base_chain, writer_steps::ScratchDir(req)));
  // The chain as planned: a V replaced since (a remove and a rewrite) is not what was asked for.
  if (chain.layers().front()->header().header_checksum != plan.delta.checksum) {
    return Fail(Code::kFailedPrecondition, req.delta_on + " changed while being compacted (now " +
                                               chain.layers().front()->checksum() +
                                               ", planned on " +
                                               FormatChecksum(plan.delta.checksum) + ")");
  }
  std::vector<const msf::Reader*> layers;
  std::unique_ptr<MappedFile> changes_mapping;
  std::optional<msf::Reader> changes;
  if (!changes_path.empty()) {
    MS_ASSIGN_OR_RETURN(changes_mapping, env->MapReadOnly(changes_path));
    // Built by this process a moment ago: the header check is enough.
    MS_ASSIGN_OR_RETURN(changes,
                        msf::Reader::Open(changes_mapping->bytes(), msf::VerifyLevel::kHeader));
    layers.push_back(&*changes);
  }
  layers.insert(layers.end(), chain.layers().begin(), chain.layers().end());
  MS_RETURN_IF_ERROR(writer_steps::Reserve(env, fd, plan.base_bytes + plan.deltas_bytes));
  msf::BuildOptions options;
  options.model = req.model;
  options.version = req.version;
  options.created_unix_ns = env->NowUnixNanos();
  Progress progress(env, "compact " + req.model + "/" + req.version,
                    plan.base_bytes + plan.deltas_bytes, req.progress);
  FoldStats stats;
  auto built = FoldChain(env, layers, fd, std::move(options), &stats, chain.base_file(),
                         [&progress](uint64_t n) { progress.Update(n); });
  if (built) progress.Done(built->file_size);
  return built;
}

}  // namespace

Result<msf::BuildResult> BuildDeltaVersion(Env* env, const WriteRequest& req, const DeltaPlan& plan,
                                           int fd, BuildNotes* notes) {
  if (!plan.compact && !plan.check_ratio) return BuildInto(env, req, fd, &plan.delta, notes);
  // The changes as a delta in scratch: the candidate delta (auto_compact decides on its size) or
  // the newest layer a compaction folds. Only as a layer to fold may it sit deeper than the format
  // allows (compacting a chain of 7 with changes): it is never validated as part of a chain, so
  // its depth is clamped.
  std::string changes_path;
  Result<msf::BuildResult> changes = std::unexpected(Error(Code::kInternal, "no changes"));
  if (std::holds_alternative<TsvSource>(req.source)) {
    changes_path = writer_steps::ScratchPath(env, req, "changes");
    MS_ASSIGN_OR_RETURN(int changes_fd, env->Open(changes_path, OpenMode::kReadWriteNew));
    msf::DeltaBase delta = plan.delta;
    delta.chain_depth = std::min(delta.chain_depth, msf::kMaxChainDeltas);
    changes = BuildInto(env, req, changes_fd, &delta, notes);
    env->Close(changes_fd);
    if (!changes) {
      (void)env->Remove(changes_path);
      return Fail(changes.error());
    }
  }
  Result<msf::BuildResult> built = std::unexpected(Error(Code::kInternal, "not run"));
  if (!plan.compact && !PassesCompactRatio(plan, changes->file_size, req.compact_ratio)) {
    Status copied = CopyInto(env, changes_path, fd);
    built = copied ? std::move(changes) : Fail(copied.error());
  } else {
    if (!plan.compact) {
      spdlog::info(
          "write {}/{}: the deltas would hold {} bytes over a base of {} (ratio {}): "
          "compacting",
          req.model, req.version, plan.deltas_bytes + changes->file_size, plan.base_bytes,
          req.compact_ratio);
    }
    notes->compacted = true;
    built = Compact(env, req, plan, changes_path, fd);
  }
  if (!changes_path.empty()) (void)env->Remove(changes_path);
  return built;
}

Result<DeltaPlan> PlanDelta(Env* env, const WriteRequest& req) {
  MS_RETURN_IF_ERROR(CheckRequest(req));
  DeltaPlan plan;
  auto chain = ResolveChain(env, req.root, req.model, req.delta_on);
  if (!chain) return Fail(chain.error().Context("base of delta " + req.version));
  plan.base_chain = std::move(*chain);
  const ChainLayer& top = plan.base_chain.front();
  for (const ChainLayer& layer : plan.base_chain) {
    (layer.delta ? plan.deltas_bytes : plan.base_bytes) += layer.bytes;
  }
  plan.delta.version = req.delta_on;
  plan.delta.chain_depth = top.delta ? top.chain_depth + 1 : 1;
  if (!ParseChecksum(top.checksum, &plan.delta.checksum)) {
    return Fail(Code::kCorruption, "base " + req.delta_on + " has checksum \"" + top.checksum +
                                       "\", not one this writer reads");
  }
  plan.compact = req.compact;
  if (!plan.compact && plan.delta.chain_depth > req.max_chain) {
    if (!req.auto_compact) {
      return Fail(Code::kFailedPrecondition,
                  "chain of " + req.model + " " + req.version + " would hold " +
                      std::to_string(plan.delta.chain_depth) + " deltas (limit " +
                      std::to_string(req.max_chain) + "): compact it (write --compact)");
    }
    spdlog::info(
        "write {}/{}: a delta on {} would make a chain of {} deltas (limit {}): "
        "compacting",
        req.model, req.version, req.delta_on, plan.delta.chain_depth, req.max_chain);
    plan.compact = true;
  }
  plan.check_ratio = req.auto_compact && !plan.compact;
  return plan;
}

bool PassesCompactRatio(const DeltaPlan& plan, uint64_t new_delta_bytes, double compact_ratio) {
  const double deltas = static_cast<double>(plan.deltas_bytes + new_delta_bytes);
  return deltas > compact_ratio * static_cast<double>(plan.base_bytes);
}

std::vector<ChainEntry> ChainOfDelta(const DeltaPlan& plan, const std::string& version,
                                     uint64_t bytes) {
  std::vector<ChainEntry> chain{{version, bytes}};
  for (const ChainLayer& layer : plan.base_chain)
    chain.push_back(ChainEntry{layer.version, layer.bytes});
  return chain;
}

}  // namespace modelswap
