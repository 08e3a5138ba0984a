// Opening a base version (whole or chunked) and re-laying new content in its order.
#include "sidecar/writer/base_layout.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <vector>

#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/volume/version_file.h"

namespace modelswap {
namespace {

// Puts a chunked version together in scratch: each chunk read from the store (which checks its
// hash), zero runs left as holes.
Status AssembleInto(Env* env, const std::string& root, const chunk::Recipe& recipe, int fd) {
  chunk::ChunkStore store(env, root);
  MS_RETURN_IF_ERROR(env->Truncate(fd, recipe.file_bytes));
  std::vector<std::byte> buffer;
  for (const chunk::RecipeChunk& c : recipe.chunks) {
    if (c.hole) continue;
    buffer.resize(c.length);
    MS_RETURN_IF_ERROR(store.Get(c.hash, buffer));
    MS_RETURN_IF_ERROR(env->PWrite(fd, buffer, c.offset));
  }
  return Ok();
}

}  // namespace

Result<std::unique_ptr<BaseVersion>> BaseVersion::Open(Env* env, const std::string& root,
                                                       const std::string& model,
                                                       const std::string& version,
                                                       const std::string& scratch_dir,
                                                       msf::VerifyLevel level) {
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  auto recipe = chunk::ReadRecipeBeneath(env, root, chunk::RecipeRel(model, version));
  if (!recipe && recipe.error().code() != Code::kNotFound) {
    return Fail(recipe.error().Context("base version " + version));
  }
  std::unique_ptr<MappedFile> mapping;
  std::string scratch;
  if (!recipe) {
    auto whole = MapReadOnlyBeneath(env, root, VersionRel(model, version));
    if (!whole) return Fail(whole.error().Context("base version " + version));
    mapping = std::move(*whole);
  } else {
    scratch = JoinPath(scratch_dir, "modelswap-base-" + model + "-" + version + "-" +
                                        std::to_string(::getpid()) + "-" +
                                        std::to_string(env->NowUnixNanos()) + ".msf");
    MS_ASSIGN_OR_RETURN(int fd, env->Open(scratch, OpenMode::kReadWriteNew));
    Status st = AssembleInto(env, root, *recipe, fd);
    env->Close(fd);
    if (st) {
      auto mapped = env->MapReadOnly(scratch);
      if (mapped)
        mapping = std::move(*mapped);
      else
        st = Fail(mapped.error());
    }
    if (!st) {
      (void)env->Remove(scratch);
      return Fail(st.error().Context("base version " + version));
    }
  }
  auto reader = msf::Reader::Open(mapping->bytes(), level);
  Status checked = Ok();
  if (!reader) {
    checked = Fail(reader.error());
  } else if (reader->header().model != model || reader->header().version != version) {
    checked =
        Fail(Code::kCorruption, "names " + reader->header().model + "/" + reader->header().version);
  } else if (recipe && reader->header().header_checksum != recipe->msf_checksum) {
    checked = Fail(Code::kCorruption, "its chunks do not make the file its recipe names");
  }
  if (!checked) {
    mapping.reset();
    if (!scratch.empty()) (void)env->Remove(scratch);
    return Fail(checked.error().Context("base version " + version));
  }
  return std::unique_ptr<BaseVersion>(
      new BaseVersion(env, std::move(mapping), *reader, std::move(scratch)));
}

BaseVersion::~BaseVersion() {
  mapping_.reset();
  if (!scratch_.empty()) (void)env_->Remove(scratch_);
}

Result<msf::BuildResult> RelayOnBase(Env* env, const msf::Reader& base, const msf::Reader& fresh,
                                     int fd, msf::BuildOptions options) {
  options.hash_seed = base.header().hash_seed;
  options.min_index_capacity = base.capacity();
  msf::Builder builder(env, fd, std::move(options));
  Status added = Ok();
  uint64_t kept = 0;
  // First the base's keys that the new content still has, in the base's order, with the new
  // values; then the new keys, in the new content's order.
  MS_RETURN_IF_ERROR(base.ForEach([&](auto key, auto) {
    auto value = fresh.Find(key);
    if (!value) return true;
    ++kept;
    added = builder.Add(key, *value);
    return static_cast<bool>(added);
  }));
  MS_RETURN_IF_ERROR(added);
  MS_RETURN_IF_ERROR(fresh.ForEach([&](auto key, auto value) {
    if (base.Find(key)) return true;
    added = builder.Add(key, value);
    return static_cast<bool>(added);
  }));
  MS_RETURN_IF_ERROR(added);
  spdlog::info("write on base: {} entries kept in the base's order, {} appended, {} dropped", kept,
               fresh.size() - kept, base.size() - kept);
  return builder.Finish();
}

}  // namespace modelswap
