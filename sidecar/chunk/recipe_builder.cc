// Cutting a file's bytes into a Recipe plus the contents of its chunks (recipe.h).
#include <algorithm>

#include "common/names.h"
#include "sidecar/chunk/recipe.h"

namespace modelswap::chunk {
namespace {

constexpr size_t kReadPiece = 4 << 20;

// Hashes and hands one cut to the sink (holes are neither hashed nor stored) and appends it.
Status Emit(Recipe& recipe, const ChunkSink& sink, std::span<const std::byte> bytes, Cut cut) {
  RecipeChunk c;
  c.offset = recipe.file_bytes;
  c.length = static_cast<uint32_t>(cut.length);
  c.hole = cut.hole;
  if (!cut.hole) {
    c.hash = Sha256(bytes.first(cut.length));
    MS_ASSIGN_OR_RETURN(c.stored_length, sink(c, bytes.first(cut.length)));
    if (c.stored_length == 0) {
      return Fail(Code::kInternal, "chunk sink returned stored_length 0 for " + ToHex(c.hash));
    }
  }
  recipe.file_bytes += cut.length;
  recipe.chunks.push_back(c);
  return Ok();
}

}  // namespace

RecipeBuilder::RecipeBuilder(Recipe recipe, ChunkSink sink)
    : recipe_(std::move(recipe)), sink_(std::move(sink)) {}

Result<RecipeBuilder> RecipeBuilder::Create(std::string model, std::string version,
                                            const ChunkerParams& params, ChunkSink sink) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  MS_RETURN_IF_ERROR(ValidateVersionName(version));
  MS_RETURN_IF_ERROR(ValidateParams(params));
  Recipe r;
  r.model = std::move(model);
  r.version = std::move(version);
  r.params = params;
  return RecipeBuilder(std::move(r), std::move(sink));
}

Status RecipeBuilder::Add(std::span<const std::byte> data) {
  if (finished_) return Fail(Code::kFailedPrecondition, "recipe builder: Add after Finish");
  // Drop what was cut already before appending, so pending_ stays near Lookahead + one piece.
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(pending_start_));
  pending_start_ = 0;
  pending_.insert(pending_.end(), data.begin(), data.end());
  added_ += data.size();
  return Drain(/*final=*/false);
}

Status RecipeBuilder::Drain(bool final) {
  const size_t need = Lookahead(recipe_.params);
  while (pending_.size() - pending_start_ > 0) {
    std::span<const std::byte> rest(pending_.data() + pending_start_,
                                    pending_.size() - pending_start_);
    if (!final && rest.size() < need) break;  // the next cut may depend on bytes not here yet
    Cut cut = NextChunk(rest, recipe_.params);
    MS_RETURN_IF_ERROR(Emit(recipe_, sink_, rest, cut));
    pending_start_ += cut.length;
  }
  return Ok();
}

Result<Recipe> RecipeBuilder::Finish(uint64_t msf_checksum) {
  if (finished_) return Fail(Code::kFailedPrecondition, "recipe builder: Finish twice");
  MS_RETURN_IF_ERROR(Drain(/*final=*/true));
  finished_ = true;
  pending_.clear();
  recipe_.msf_checksum = msf_checksum;
  return std::move(recipe_);
}

Result<Recipe> ChunkBytes(std::span<const std::byte> file, std::string model, std::string version,
                          uint64_t msf_checksum, const ChunkerParams& params, ChunkSink sink) {
  MS_ASSIGN_OR_RETURN(RecipeBuilder b, RecipeBuilder::Create(std::move(model), std::move(version),
                                                             params, std::move(sink)));
  // No copy: the whole input is at hand, so every cut sees the rest of it.
  size_t pos = 0;
  while (pos < file.size()) {
    std::span<const std::byte> rest = file.subspan(pos);
    Cut cut = NextChunk(rest, params);
    MS_RETURN_IF_ERROR(Emit(b.recipe_, b.sink_, rest, cut));
    pos += cut.length;
  }
  return b.Finish(msf_checksum);
}

Result<Recipe> ChunkFile(Env* env, const std::string& path, std::string model, std::string version,
                         uint64_t msf_checksum, const ChunkerParams& params, ChunkSink sink) {
  MS_ASSIGN_OR_RETURN(RecipeBuilder b, RecipeBuilder::Create(std::move(model), std::move(version),
                                                             params, std::move(sink)));
  MS_ASSIGN_OR_RETURN(int fd, env->Open(path, OpenMode::kRead));
  (void)env->AdviseSequential(fd);  // a hint; a refusal only costs read-ahead
  std::vector<std::byte> buf(kReadPiece);
  uint64_t offset = 0;
  Status st = Ok();
  for (;;) {
    auto n = env->PRead(fd, buf, offset);
    if (!n) {
      st = Fail(n.error().Context(path));
      break;
    }
    if (*n == 0) break;
    offset += *n;
    st = b.Add(std::span(buf).first(*n));
    if (!st) break;
  }
  env->Close(fd);
  MS_RETURN_IF_ERROR(st);
  return b.Finish(msf_checksum);
}

}  // namespace modelswap::chunk
