// The writer: temp file, reserve, stream entries from the source, finish, fsync, rename.
#include "sidecar/writer/writer.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/names.h"
#include "sidecar/msf/builder.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/base_layout.h"
#include "sidecar/writer/build_steps.h"
#include "sidecar/writer/delta_write.h"
#include "sidecar/writer/progress.h"
#include "sidecar/writer/synthetic_data.h"
#include "sidecar/writer/tsv.h"

namespace modelswap {
namespace {

using writer_steps::BuildNotes;

// A source inside the model volume (the operator passes <root>/<path>) is opened beneath the
// root like every other file there, so a symlink on the volume cannot feed the writer a file
// from outside it; a source elsewhere is the caller's own file. Returns the path relative to
// the root, or nullopt.
std::optional<std::string> RelativeToRoot(const std::string& root, const std::string& path) {
  std::string prefix = root.ends_with('/') ? root : root + "/";
  if (root.empty() || !path.starts_with(prefix)) return std::nullopt;
  return path.substr(prefix.size());
}

Result<int> OpenSource(Env* env, const std::string& root, const std::string& path) {
  if (auto rel = RelativeToRoot(root, path)) return env->OpenBeneath(root, *rel, OpenMode::kRead);
  return env->Open(path, OpenMode::kRead);
}

Status FeedGenerated(const GenerateSource& src, const WriteRequest& req, msf::Builder& builder,
                     Progress& progress) {
  std::string value;
  for (uint64_t k = 0; builder.data_bytes() < src.bytes || k == 0; ++k) {
    SyntheticValue(req.model, req.version, k, src.seed, src.value_bytes, &value);
    MS_RETURN_IF_ERROR(builder.Add(std::to_string(k), value));
    if ((k & 1023) == 0) progress.Update(builder.data_bytes());
  }
  return Ok();
}

// Splits the file into lines block by block; a line may span blocks. Tombstones (`key<TAB>\N`)
// only in a delta.
Status FeedTsv(Env* env, const std::string& root, const TsvSource& src, bool delta,
               msf::Builder& builder, Progress& progress, BuildNotes* notes) {
  MS_ASSIGN_OR_RETURN(int fd, OpenSource(env, root, src.path));
  std::vector<std::byte> block(4 << 20);
  std::string pending, key, value;
  uint64_t offset = 0, line_number = 0;
  auto take_line = [&](std::string_view line) -> Status {
    TsvLine kind = TsvLine::kBlank;
    MS_RETURN_IF_ERROR(ParseTsvLine(line, ++line_number, &key, &value, &kind));
    if (kind == TsvLine::kBlank) return Ok();
    notes->line_of_entry.push_back(line_number);
    if (kind == TsvLine::kEntry) return builder.Add(key, value);
    if (!delta) {
      return Fail(Code::kInvalidArgument,
                  "line " + std::to_string(line_number) +
                      ": key<TAB>\\N deletes a key, which only a delta can do (write --delta-on)");
    }
    ++notes->tombstones;
    return builder.AddTombstone(key);
  };
  Status st = Ok();
  for (;;) {
    auto n = env->PRead(fd, block, offset);
    if (!n) {
      st = Fail(n.error().Context(src.path));
      break;
    }
    if (*n == 0) break;
    offset += *n;
    pending.append(reinterpret_cast<const char*>(block.data()), *n);
    size_t start = 0;
    for (size_t nl; st && (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      st = take_line(std::string_view(pending).substr(start, nl - start));
    }
    if (!st) break;
    pending.erase(0, start);
    progress.Update(offset);
  }
  env->Close(fd);
  if (st && !pending.empty()) st = take_line(pending);
  if (!st) return Fail(st.error().Context(src.path));
  return Ok();
}

Status FeedMsf(Env* env, const std::string& root, const MsfSource& src, msf::Builder& builder,
               Progress& progress) {
  auto rel = RelativeToRoot(root, src.path);
  MS_ASSIGN_OR_RETURN(OpenedModelFile file,
                      rel ? OpenModelFileBeneath(env, root, *rel, msf::VerifyLevel::kFull)
                          : OpenModelFile(env, src.path, msf::VerifyLevel::kFull));
  Status added = Ok();
  MS_RETURN_IF_ERROR(file.reader.ForEach([&](auto key, auto value) {
    added = builder.Add(key, value);
    progress.Update(builder.data_bytes());
    return static_cast<bool>(added);
  }));
  return added;
}

uint64_t EstimateBytes(Env* env, const WriteSource& source) {
  if (auto* g = std::get_if<GenerateSource>(&source)) return g->bytes + g->bytes / 8;
  const std::string& path = std::holds_alternative<TsvSource>(source)
                                ? std::get<TsvSource>(source).path
                                : std::get<MsfSource>(source).path;
  auto info = env->Stat(path);
  return info ? info->size + info->size / 4 : 0;
}

// Removes scratch files a crashed earlier attempt at this same version left behind.
void RemoveStaleTemps(Env* env, const std::string& dir, const std::string& version) {
  auto names = env->ListDir(dir);
  if (!names) return;
  for (const std::string& name : *names) {
    if (name.starts_with(VersionTempPrefix(version)) ||
        name.starts_with(".tmp-" + chunk::RecipeFileName(version) + "-")) {
      spdlog::info("write removing stale scratch file={}", name);
      (void)env->Remove(JoinPath(dir, name));
    }
  }
}

}  // namespace

namespace writer_steps {

Status Reserve(Env* env, int fd, uint64_t estimate) {
  if (estimate == 0) return Ok();
  if (auto st = env->Fallocate(fd, 0, estimate); !st) {
    if (st.error().code() != Code::kNotSupported) return Fail(st.error());
    spdlog::info("write fallocate not supported; writing without reserving ({})",
                 st.error().message());
  }
  return Ok();
}

Result<msf::BuildResult> BuildInto(Env* env, const WriteRequest& req, int fd,
                                   const msf::DeltaBase* delta, BuildNotes* notes) {
  uint64_t estimate = EstimateBytes(env, req.source);
  MS_RETURN_IF_ERROR(Reserve(env, fd, estimate));
  msf::BuildOptions options;
  options.model = req.model;
  options.version = req.version;
  options.created_unix_ns = env->NowUnixNanos();
  if (delta != nullptr) options.delta = *delta;
  if (std::holds_alternative<TsvSource>(req.source)) {
    options.describe_entry = [notes](uint64_t e) {
      return "line " + std::to_string(notes->line_of_entry[e]);
    };
  }
  msf::Builder builder(env, fd, options);
  Progress progress(env, "write " + req.model + "/" + req.version, estimate, req.progress);
  Status fed = std::visit(
      [&](const auto& src) -> Status {
        using T = std::decay_t<decltype(src)>;
        if constexpr (std::is_same_v<T, GenerateSource>)
          return FeedGenerated(src, req, builder, progress);
        if constexpr (std::is_same_v<T, TsvSource>)
          return FeedTsv(env, req.root, src, delta != nullptr, builder, progress, notes);
        if constexpr (std::is_same_v<T, MsfSource>)
          return FeedMsf(env, req.root, src, builder, progress);
        if constexpr (std::is_same_v<T, NoChanges>)
          return Fail(Code::kInvalidArgument, "no source to write (NoChanges is for compaction)");
      },
      req.source);
  MS_RETURN_IF_ERROR(fed);
  auto result = builder.Finish();
  progress.Done(builder.data_bytes());
  return result;
}

std::string ScratchDir(const WriteRequest& req) {
  if (!req.scratch_dir.empty()) return req.scratch_dir;
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

std::string ScratchPath(Env* env, const WriteRequest& req, std::string_view what) {
  return JoinPath(ScratchDir(req), "modelswap-" + std::string(what) + "-" + req.model + "-" +
                                       req.version + "-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(env->NowUnixNanos()) + ".msf");
}

}  // namespace writer_steps

namespace {

using writer_steps::BuildInto;
using writer_steps::ScratchDir;
using writer_steps::ScratchPath;

// The version's bytes into fd: straight from the source; a delta or compaction on a plan; or, on
// a base, built in scratch first and then re-laid in the base's order.
Result<msf::BuildResult> BuildVersion(Env* env, const WriteRequest& req, const DeltaPlan* plan,
                                      int fd, BuildNotes* notes) {
  if (plan != nullptr) return BuildDeltaVersion(env, req, *plan, fd, notes);
  if (req.base_version.empty()) return BuildInto(env, req, fd, nullptr, notes);
  if (req.base_version == req.version) {
    return Fail(Code::kInvalidArgument, "--base names the version being written");
  }
  MS_ASSIGN_OR_RETURN(
      auto base, BaseVersion::Open(env, req.root, req.model, req.base_version, ScratchDir(req)));
  const std::string fresh_path = ScratchPath(env, req, "fresh");
  MS_ASSIGN_OR_RETURN(int fresh_fd, env->Open(fresh_path, OpenMode::kReadWriteNew));
  auto fresh_built = BuildInto(env, req, fresh_fd, nullptr, notes);
  env->Close(fresh_fd);
  Result<msf::BuildResult> relaid = std::unexpected(Error(Code::kInternal, "not run"));
  if (!fresh_built) {
    relaid = Fail(fresh_built.error());
  } else if (auto mapping = env->MapReadOnly(fresh_path); !mapping) {
    relaid = Fail(mapping.error());
  } else if (auto fresh = msf::Reader::Open((*mapping)->bytes(), msf::VerifyLevel::kHeader);
             !fresh) {
    relaid = Fail(fresh.error());
  } else {
    msf::BuildOptions options;
    options.model = req.model;
    options.version = req.version;
    options.created_unix_ns = env->NowUnixNanos();
    relaid = RelayOnBase(env, base->reader(), *fresh, fd, std::move(options));
  }
  (void)env->Remove(fresh_path);
  return relaid;
}

// The result's delta fields and chain (see WriteResult).
void DescribeChain(const WriteRequest& req, const DeltaPlan* plan, const BuildNotes& notes,
                   WriteResult* result) {
  result->compacted = notes.compacted;
  if (plan == nullptr || notes.compacted) {
    result->chain = {ChainEntry{req.version, result->bytes}};
    return;
  }
  result->delta_base = plan->delta.version;
  result->chain_depth = plan->delta.chain_depth;
  result->tombstones = notes.tombstones;
  result->chain = ChainOfDelta(*plan, req.version, result->bytes);
}

// A reused version's chain, read back from the volume (it may be a delta written earlier).
void DescribeReusedChain(Env* env, const WriteRequest& req, WriteResult* result) {
  auto chain = ResolveChain(env, req.root, req.model, req.version);
  if (!chain) {
    spdlog::warn("write {}/{}: the reused version's chain does not resolve: {}", req.model,
                 req.version, chain.error().ToString());
    return;
  }
  for (const ChainLayer& layer : *chain)
    result->chain.push_back(ChainEntry{layer.version, layer.bytes});
  const ChainLayer& top = chain->front();
  if (top.delta) {
    result->delta_base = top.base_version;
    result->chain_depth = top.chain_depth;
  }
}

Result<WriteResult> ReuseExisting(Env* env, const WriteRequest& req, int64_t start) {
  auto info = VerifyVersionFile(env, req.root, req.model, req.version);
  if (!info) {
    return Fail(
        info.error().Context("the version file exists but does not verify; not reusing it"));
  }
  spdlog::info("write model={} version={} reusing the existing verified file", req.model,
               req.version);
  WriteResult result;
  result.path = info->path;
  result.bytes = info->bytes;
  result.entry_count = info->entry_count;
  result.checksum = info->checksum;
  result.seconds = static_cast<double>(env->NowMonotonicNanos() - start) / 1e9;
  result.reused = true;
  DescribeReusedChain(env, req, &result);
  return result;
}

Result<WriteResult> ReuseChunked(Env* env, const WriteRequest& req, int64_t start) {
  auto recipe = CheckChunkedVersion(env, req.root, req.model, req.version);
  if (!recipe) {
    return Fail(
        recipe.error().Context("the version's recipe exists but does not check; not "
                               "reusing it"));
  }
  spdlog::info("write model={} version={} reusing the existing chunked version", req.model,
               req.version);
  WriteResult result;
  result.path = JoinPath(VersionsDir(req.root, req.model), chunk::RecipeFileName(req.version));
  result.bytes = recipe->file_bytes;
  result.checksum = FormatChecksum(recipe->msf_checksum);
  result.seconds = static_cast<double>(env->NowMonotonicNanos() - start) / 1e9;
  result.reused = true;
  result.chunked = true;
  result.chunks.recipe_path = result.path;
  result.chunks.chunks_total = recipe->chunks.size();
  DescribeReusedChain(env, req, &result);
  return result;
}

// Builds the whole file in node-local scratch, then stores it as chunks and a recipe.
Result<WriteResult> WriteChunked(Env* env, const WriteRequest& req, const DeltaPlan* plan,
                                 int64_t start) {
  const std::string scratch = ScratchPath(env, req, "write");
  MS_ASSIGN_OR_RETURN(int fd, env->Open(scratch, OpenMode::kReadWriteNew));
  BuildNotes notes;
  auto built = BuildVersion(env, req, plan, fd, &notes);
  env->Close(fd);
  Result<ChunkedUploadResult> uploaded = std::unexpected(Error(Code::kInternal, "not run"));
  if (built) {
    ChunkedUploadOptions options;
    options.params = req.chunking;
    options.zstd_level = req.zstd_level;
    options.threads = req.threads;
    options.gc_wait_ns = req.gc_wait_ns;
    options.base_version = req.base_version;
    options.chunk_deltas = req.chunk_deltas;
    Progress progress(env, "upload " + req.model + "/" + req.version, built->file_size,
                      req.progress);
    options.on_progress = [&progress](uint64_t cut) { progress.Update(cut); };
    uploaded = UploadChunked(env, req.root, req.model, req.version, scratch, built->header_checksum,
                             options);
    if (uploaded) progress.Done(built->file_size);
  }
  if (auto removed = env->Remove(scratch); !removed) {
    spdlog::warn("write could not remove scratch file {}: {}", scratch, removed.error().ToString());
  }
  if (!built) return Fail(built.error());
  if (!uploaded) return Fail(uploaded.error());
  WriteResult result;
  result.path = uploaded->recipe_path;
  result.bytes = built->file_size;
  result.entry_count = built->entry_count;
  result.checksum = FormatChecksum(built->header_checksum);
  result.seconds = static_cast<double>(env->NowMonotonicNanos() - start) / 1e9;
  result.chunked = true;
  result.chunks = *uploaded;
  DescribeChain(req, plan, notes, &result);
  return result;
}

}  // namespace

Result<WriteResult> WriteVersion(Env* env, const WriteRequest& req) {
  MS_RETURN_IF_ERROR(ValidateModelName(req.model));
  MS_RETURN_IF_ERROR(ValidateVersionName(req.version));
  const int64_t start = env->NowMonotonicNanos();
  const std::string dir = VersionsDir(req.root, req.model);
  const std::string final_path = VersionPath(req.root, req.model, req.version);
  MS_RETURN_IF_ERROR(env->CreateDirs(dir));
  // One name per version, whatever its layout: neither kind may shadow the other.
  const std::string recipe_path = JoinPath(dir, chunk::RecipeFileName(req.version));
  if (env->Stat(recipe_path)) {
    if (!req.reuse_existing) {
      return Fail(Code::kAlreadyExists,
                  recipe_path + " already exists; published versions are never overwritten");
    }
    return ReuseChunked(env, req, start);
  }
  if (env->Stat(final_path)) {
    if (!req.reuse_existing) {
      return Fail(Code::kAlreadyExists,
                  final_path + " already exists; published versions are never overwritten");
    }
    return ReuseExisting(env, req, start);
  }
  RemoveStaleTemps(env, dir, req.version);
  std::optional<DeltaPlan> plan;
  if (!req.delta_on.empty()) {
    MS_ASSIGN_OR_RETURN(plan, PlanDelta(env, req));
  } else if (req.compact || req.auto_compact || std::holds_alternative<NoChanges>(req.source)) {
    return Fail(Code::kInvalidArgument, "compaction needs the version to fold (--delta-on)");
  }
  if (req.layout == WriteRequest::Layout::kChunked) {
    return WriteChunked(env, req, plan ? &*plan : nullptr, start);
  }
  const std::string tmp_name = VersionTempPrefix(req.version) + std::to_string(::getpid()) + "-" +
                               std::to_string(env->NowUnixNanos());
  const std::string tmp = JoinPath(dir, tmp_name);
  // Beneath the root: a symlinked model or versions directory must not send the file elsewhere.
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(req.root, req.model + "/versions/" + tmp_name,
                                               OpenMode::kReadWriteNew));
  BuildNotes notes;
  auto built = BuildVersion(env, req, plan ? &*plan : nullptr, fd, &notes);
  Status st = built ? env->Fsync(fd) : Fail(built.error());
  env->Close(fd);
  if (st) st = env->RenameNoReplace(tmp, final_path);
  if (!st) {
    (void)env->Remove(tmp);
    return Fail(st.error());
  }
  MS_RETURN_IF_ERROR(env->FsyncDir(dir));
  WriteResult result;
  result.path = final_path;
  result.bytes = built->file_size;
  result.entry_count = built->entry_count;
  result.checksum = FormatChecksum(built->header_checksum);
  result.seconds = static_cast<double>(env->NowMonotonicNanos() - start) / 1e9;
  DescribeChain(req, plan ? &*plan : nullptr, notes, &result);
  spdlog::info("write model={} version={} bytes={} entries={} seconds={:.3f}", req.model,
               req.version, result.bytes, result.entry_count, result.seconds);
  return result;
}

}  // namespace modelswap
