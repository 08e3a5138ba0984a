// Opening a base version (whole or chunked) and re-laying new content in its order.
#include "sidecar/writer/base_layout.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/volume/version_file.h"

namespace modelswap {
namespace {

// Puts a chunked version together in scratch: each chunk read from the store (which checks its
// hash; a delta chunk is read against its base, ChunkStore::GetEntry), zero runs left as holes.
Status AssembleInto(Env* env, const std::string& root, const chunk::Recipe& recipe, int fd) {
  chunk::ChunkStore store(env, root);
  MS_RETURN_IF_ERROR(env->Truncate(fd, recipe.file_bytes));
  std::vector<std::byte> buffer;
  for (const chunk::RecipeChunk& c : recipe.chunks) {
    if (c.hole) continue;
    buffer.resize(c.length);
    MS_RETURN_IF_ERROR(store.GetEntry(c, buffer));
    MS_RETURN_IF_ERROR(env->PWrite(fd, buffer, c.offset));
  }
  return Ok();
}

// The INDEX section's offset in a header's section table (ParseHeader guarantees one).
uint64_t IndexOffset(const msf::Header& header) {
  for (const msf::SectionInfo& s : header.sections) {
    if (s.kind == msf::kSectionIndex) return s.offset;
  }
  return 0;
}

// The base file's first page (its header), from the chunks that hold it.
Result<std::vector<std::byte>> BaseHeaderPage(chunk::ChunkStore* store, const chunk::Recipe& base) {
  std::vector<std::byte> page(msf::kHeaderSize);
  std::vector<std::byte> buffer;
  for (const chunk::RecipeChunk& c : base.chunks) {
    if (c.offset >= page.size()) break;
    if (c.hole) continue;
    buffer.resize(c.length);
    MS_RETURN_IF_ERROR(store->GetEntry(c, buffer));
    const size_t n = std::min<uint64_t>(c.length, page.size() - c.offset);
    std::copy_n(buffer.begin(), n, page.begin() + static_cast<ptrdiff_t>(c.offset));
  }
  return page;
}

}  // namespace

Result<DeltaBasePicker> DeltaBasePicker::Create(chunk::ChunkStore* store, chunk::Recipe base,
                                                std::span<const std::byte> file) {
  auto fresh = msf::ParseHeader(file);
  Result<msf::Header> old = std::unexpected(Error(Code::kInternal, "not read"));
  if (fresh) {
    auto page = BaseHeaderPage(store, base);
    if (!page) return Fail(page.error().Context("base version " + base.version + "'s header"));
    old = msf::ParseHeaderPage(*page, base.file_bytes);
  }
  const std::string version = base.version;
  DeltaBasePicker picker(std::move(base.chunks));
  if (!fresh || !old) {
    spdlog::warn("write: delta chunks matched at plain offsets against {}: {}", version,
                 (!fresh ? fresh.error() : old.error()).ToString());
    return picker;
  }
  picker.index_from_ = IndexOffset(*fresh);
  picker.base_index_ = IndexOffset(*old);
  return picker;
}

std::optional<DeltaBase> DeltaBasePicker::Pick(uint64_t offset, uint32_t length) const {
  // A chunk mostly in INDEX (its middle byte there) is compared with the base's INDEX.
  if (offset + length / 2 >= index_from_) {
    const int64_t moved = static_cast<int64_t>(offset) - static_cast<int64_t>(index_from_) +
                          static_cast<int64_t>(base_index_);
    offset = static_cast<uint64_t>(std::max<int64_t>(moved, 0));
  }
  auto it =
      std::upper_bound(chunks_.begin(), chunks_.end(), offset,
                       [](uint64_t off, const chunk::RecipeChunk& c) { return off < c.offset; });
  if (it != chunks_.begin()) --it;
  const uint64_t end = offset + length;
  const chunk::RecipeChunk* best = nullptr;
  uint64_t best_overlap = 0;
  for (; it != chunks_.end() && it->offset < end; ++it) {
    const uint64_t lo = std::max(offset, it->offset);
    const uint64_t hi = std::min(end, it->offset + it->length);
    if (hi > lo && hi - lo > best_overlap) {
      best = &*it;
      best_overlap = hi - lo;
    }
  }
  if (best == nullptr || best->hole) return std::nullopt;
  if (best->delta) return DeltaBase{best->base_hash, best->base_length};
  return DeltaBase{best->hash, best->length};
}

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
