// Recipe encoding, checked decoding (recipe.h draws the format) and reading from the volume.
#include "sidecar/chunk/recipe.h"

#include <cstring>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/chunk/chunk_store.h"

namespace modelswap::chunk {
namespace {

static_assert(std::endian::native == std::endian::little, "big-endian hosts need byte swaps");

constexpr uint32_t kFlagHole = 1;
constexpr uint32_t kFlagDelta = 2;    // format version 2 only
constexpr size_t kMaxNameBytes = 63;  // ValidateModelName / ValidateVersionName

std::unexpected<Error> Corrupt(std::string what) {
  return Fail(Code::kCorruption, "recipe: " + std::move(what));
}

template <class T>
void Put(std::string& out, T v) {
  char b[sizeof v];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof v);
}

// Bounds-checked little-endian reads from the front (the msf cursor's habit: `n <= left`).
class Reader {
 public:
  explicit Reader(std::span<const std::byte> d) : d_(d) {}
  size_t remaining() const { return d_.size() - pos_; }
  size_t position() const { return pos_; }
  template <class T>
  T Get() {  // REQUIRES: remaining() >= sizeof(T), checked by the caller for the whole record
    T v;
    std::memcpy(&v, d_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string_view GetString(size_t n) {
    std::string_view s(reinterpret_cast<const char*>(d_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const std::byte> d_;
  size_t pos_ = 0;
};

Status CheckEntry(const RecipeChunk& c, uint64_t index, uint64_t expected_offset,
                  const ChunkerParams& params, uint32_t flags, uint32_t known_flags) {
  std::string at = "chunk " + std::to_string(index) + ": ";
  if (flags & ~known_flags) return Corrupt(at + "unknown flags " + std::to_string(flags));
  if (c.offset != expected_offset) {
    return Corrupt(at + "offset " + std::to_string(c.offset) + " is not where chunk " +
                   std::to_string(index) + " must start (" + std::to_string(expected_offset) +
                   "): chunks are not contiguous");
  }
  if (c.length == 0) return Corrupt(at + "length 0");
  if (c.length > params.max_bytes) {
    return Corrupt(at + "length " + std::to_string(c.length) + " is over params.max_bytes " +
                   std::to_string(params.max_bytes));
  }
  if (c.hole && c.delta) return Corrupt(at + "both a hole and a delta chunk");
  if (c.hole) {
    if (c.stored_length != 0) return Corrupt(at + "a hole with a stored_length");
    if (c.hash != ChunkHash{}) return Corrupt(at + "a hole with a hash");
  } else if (c.stored_length == 0 || c.stored_length > MaxStoredBytes(c.length)) {
    return Corrupt(at + "stored_length " + std::to_string(c.stored_length) +
                   " impossible for length " + std::to_string(c.length));
  }
  return Ok();
}

// The base record of a delta entry (recipe.h: 32 bytes base SHA-256, 4 bytes base_length).
Status CheckBase(const RecipeChunk& c, uint64_t index, const ChunkerParams& params) {
  std::string at = "chunk " + std::to_string(index) + ": delta base ";
  if (c.base_hash == ChunkHash{}) return Corrupt(at + "hash is all zero");
  if (c.base_hash == c.hash) return Corrupt(at + "is the chunk itself");
  if (c.base_length == 0 || c.base_length > params.max_bytes) {
    return Corrupt(at + "length " + std::to_string(c.base_length) + " not 1..params.max_bytes " +
                   std::to_string(params.max_bytes));
  }
  return Ok();
}

}  // namespace

std::string RecipeFileName(std::string_view version) {
  return std::string(version) + ".recipe";
}

std::string RecipeRel(std::string_view model, std::string_view version) {
  return std::string(model) + "/versions/" + RecipeFileName(version);
}

std::string EncodeRecipe(const Recipe& r) {
  uint32_t deltas = 0;
  for (const RecipeChunk& c : r.chunks)
    deltas += c.delta ? 1 : 0;
  std::string out;
  out.reserve(kRecipeFixedHeaderBytes + r.model.size() + r.version.size() +
              r.chunks.size() * kRecipeEntryBytes + deltas * kRecipeBaseEntryBytes +
              kRecipeTrailerBytes);
  out.append(kRecipeMagic, sizeof kRecipeMagic);
  // Version 1 whenever it can be: older readers keep reading every recipe without deltas.
  Put<uint32_t>(out, deltas == 0 ? kRecipeFormatVersion : kRecipeDeltaFormatVersion);
  Put<uint32_t>(out, 0);  // flags
  Put<uint64_t>(out, r.file_bytes);
  Put<uint64_t>(out, r.msf_checksum);
  Put<uint32_t>(out, r.params.min_bytes);
  Put<uint32_t>(out, r.params.avg_bytes);
  Put<uint32_t>(out, r.params.max_bytes);
  Put<uint32_t>(out, deltas);  // reserved (0) in version 1, delta_count in version 2
  Put<uint64_t>(out, r.chunks.size());
  Put<uint16_t>(out, static_cast<uint16_t>(r.model.size()));
  Put<uint16_t>(out, static_cast<uint16_t>(r.version.size()));
  out += r.model;
  out += r.version;
  for (const RecipeChunk& c : r.chunks) {
    Put<uint64_t>(out, c.offset);
    Put<uint32_t>(out, c.length);
    Put<uint32_t>(out, c.stored_length);
    Put<uint32_t>(out, (c.hole ? kFlagHole : 0) | (c.delta ? kFlagDelta : 0));
    out.append(reinterpret_cast<const char*>(c.hash.bytes.data()), c.hash.bytes.size());
  }
  for (const RecipeChunk& c : r.chunks) {
    if (!c.delta) continue;
    out.append(reinterpret_cast<const char*>(c.base_hash.bytes.data()), c.base_hash.bytes.size());
    Put<uint32_t>(out, c.base_length);
  }
  Put<uint64_t>(out, Xxh3(out));
  return out;
}

Result<Recipe> DecodeRecipe(std::span<const std::byte> bytes) {
  if (bytes.size() < kRecipeFixedHeaderBytes + kRecipeTrailerBytes) {
    return Corrupt("truncated: " + std::to_string(bytes.size()) + " bytes, shorter than a header");
  }
  if (std::memcmp(bytes.data(), kRecipeMagic, sizeof kRecipeMagic) != 0) {
    return Corrupt("bad magic (not a recipe)");
  }
  Reader in(bytes.subspan(sizeof kRecipeMagic));
  Recipe r;
  const uint32_t format = in.Get<uint32_t>();
  if (format != kRecipeFormatVersion && format != kRecipeDeltaFormatVersion) {
    return Corrupt("format version " + std::to_string(format) + " unknown (this reader knows " +
                   std::to_string(kRecipeFormatVersion) + " and " +
                   std::to_string(kRecipeDeltaFormatVersion) + ")");
  }
  const bool v2 = format == kRecipeDeltaFormatVersion;
  if (uint32_t flags = in.Get<uint32_t>(); flags != 0) {
    return Corrupt("unknown header flags " + std::to_string(flags));
  }
  r.file_bytes = in.Get<uint64_t>();
  r.msf_checksum = in.Get<uint64_t>();
  r.params.min_bytes = in.Get<uint32_t>();
  r.params.avg_bytes = in.Get<uint32_t>();
  r.params.max_bytes = in.Get<uint32_t>();
  const uint64_t deltas = in.Get<uint32_t>();  // reserved (0) in version 1
  if (!v2 && deltas != 0) return Corrupt("reserved header field is not 0");
  // One encoding per recipe: a recipe without deltas is version 1 (EncodeRecipe).
  if (v2 && deltas == 0) return Corrupt("format version 2 with delta_count 0");
  const uint64_t count = in.Get<uint64_t>();
  const size_t model_len = in.Get<uint16_t>(), version_len = in.Get<uint16_t>();
  if (model_len == 0 || model_len > kMaxNameBytes || version_len == 0 ||
      version_len > kMaxNameBytes) {
    return Corrupt("name lengths " + std::to_string(model_len) + "/" + std::to_string(version_len) +
                   " out of 1..63");
  }
  // Everything after the names is sized by count and deltas: check them against the bytes there
  // before allocating or reading anything (a hostile count must not make us reserve memory).
  const size_t header = kRecipeFixedHeaderBytes + model_len + version_len;
  if (bytes.size() < header + kRecipeTrailerBytes) return Corrupt("truncated in the names");
  const uint64_t body = bytes.size() - header - kRecipeTrailerBytes;
  if (count > body / kRecipeEntryBytes) {
    return Corrupt("chunk_count " + std::to_string(count) + " does not fit the " +
                   std::to_string(body) + " bytes of entries (truncated or hostile)");
  }
  if (deltas > count) {
    return Corrupt("delta_count " + std::to_string(deltas) + " is over chunk_count " +
                   std::to_string(count));
  }
  // No overflow: count * 52 <= body, and deltas * 36 < count * 52.
  const uint64_t bases_at = header + count * kRecipeEntryBytes;
  if (body != count * kRecipeEntryBytes + deltas * kRecipeBaseEntryBytes) {
    return Corrupt("chunk_count " + std::to_string(count) + " and delta_count " +
                   std::to_string(deltas) + " do not match the " + std::to_string(body) +
                   " bytes of entries (truncated or padded)");
  }
  uint64_t stored_sum;
  std::memcpy(&stored_sum, bytes.data() + bytes.size() - kRecipeTrailerBytes, 8);
  if (Xxh3(bytes.first(bytes.size() - kRecipeTrailerBytes)) != stored_sum) {
    return Corrupt("checksum mismatch (torn, partly copied or damaged)");
  }
  r.model = std::string(in.GetString(model_len));
  r.version = std::string(in.GetString(version_len));
  if (auto st = ValidateModelName(r.model); !st) return Corrupt(st.error().message());
  if (auto st = ValidateVersionName(r.version); !st) return Corrupt(st.error().message());
  if (auto st = ValidateParams(r.params); !st) return Corrupt(st.error().message());
  r.chunks.reserve(count);
  const uint32_t known_flags = v2 ? kFlagHole | kFlagDelta : kFlagHole;
  uint64_t next = 0, delta_seen = 0;
  for (uint64_t i = 0; i < count; ++i) {
    RecipeChunk c;
    c.offset = in.Get<uint64_t>();
    c.length = in.Get<uint32_t>();
    c.stored_length = in.Get<uint32_t>();
    uint32_t flags = in.Get<uint32_t>();
    c.hole = (flags & kFlagHole) != 0;
    c.delta = (flags & kFlagDelta) != 0;
    std::memcpy(c.hash.bytes.data(), bytes.data() + header + i * kRecipeEntryBytes + 20, 32);
    (void)in.GetString(32);
    MS_RETURN_IF_ERROR(CheckEntry(c, i, next, r.params, flags, known_flags));
    if (c.delta) {
      // The k-th base record belongs to the k-th delta entry.
      if (delta_seen == deltas) {
        return Corrupt("more delta entries than delta_count " + std::to_string(deltas));
      }
      const std::byte* rec = bytes.data() + bases_at + delta_seen * kRecipeBaseEntryBytes;
      std::memcpy(c.base_hash.bytes.data(), rec, 32);
      std::memcpy(&c.base_length, rec + 32, 4);
      ++delta_seen;
      MS_RETURN_IF_ERROR(CheckBase(c, i, r.params));
    }
    if (c.length > r.file_bytes - next) {
      return Corrupt("chunk " + std::to_string(i) + " ends past file_bytes " +
                     std::to_string(r.file_bytes));
    }
    next += c.length;
    r.chunks.push_back(c);
  }
  if (delta_seen != deltas) {
    return Corrupt("delta_count " + std::to_string(deltas) + " but " + std::to_string(delta_seen) +
                   " entries are delta chunks");
  }
  if (next != r.file_bytes) {
    return Corrupt("chunks cover " + std::to_string(next) + " bytes, file_bytes is " +
                   std::to_string(r.file_bytes));
  }
  return r;
}

Result<Recipe> ReadRecipeBeneath(Env* env, const std::string& root, const std::string& rel) {
  const std::string path = JoinPath(root, rel);
  MS_ASSIGN_OR_RETURN(int fd, env->OpenBeneath(root, rel, OpenMode::kRead));
  // The size first: an oversized file is refused before a byte of it is read or allocated.
  auto info = env->StatFd(fd);
  if (info && info->size > kMaxRecipeBytes) {
    env->Close(fd);
    return Fail(Code::kInvalidArgument, path + ": " + std::to_string(info->size) +
                                            " bytes, over the recipe cap of " +
                                            std::to_string(kMaxRecipeBytes));
  }
  if (!info) {
    env->Close(fd);
    return Fail(info.error().Context(path));
  }
  // One byte more than the size, to see a file that grew meanwhile (then it is refused whole).
  std::vector<std::byte> bytes(info->size + 1);
  uint64_t off = 0;
  while (off < bytes.size()) {
    auto n = env->PRead(fd, std::span(bytes).subspan(off), off);
    if (!n) {
      env->Close(fd);
      return Fail(n.error().Context(path));
    }
    if (*n == 0) break;
    off += *n;
  }
  env->Close(fd);
  if (off > info->size) return Fail(Code::kCorruption, path + ": recipe: grew while being read");
  auto recipe = DecodeRecipe(std::span(bytes).first(off));
  if (!recipe) return Fail(recipe.error().Context(path));
  return recipe;
}

}  // namespace modelswap::chunk
