// Streaming .msf writer: DATA in 2 MiB-aligned chunks, then INDEX, then the header.
#include "sidecar/msf/builder.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/names.h"
#include "sidecar/msf/cursor.h"
#include "sidecar/msf/format.h"
#include "sidecar/msf/reader.h"

namespace modelswap::msf {
namespace {
constexpr size_t kFolio = 2 << 20;  // the page-cache folio size large aligned writes produce

// A chunk of zeros is not written: the file keeps a hole there, which reads back as zeros. Models
// with large zero runs (sparse embeddings, tests of multi-GiB files) then cost no disk.
bool IsAllZero(std::span<const std::byte> bytes) {
  return bytes.empty() || (bytes[0] == std::byte{0} &&
                           std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0);
}
}  // namespace

Builder::Builder(Env* env, int fd, BuildOptions options)
    : env_(env), fd_(fd), options_(std::move(options)), buffer_file_offset_(kHeaderSize) {
  options_.chunk_bytes = std::max(kFolio, options_.chunk_bytes / kFolio * kFolio);
  buffer_ = static_cast<std::byte*>(std::aligned_alloc(kFolio, options_.chunk_bytes));
}

Builder::~Builder() {
  std::free(buffer_);
}

Status Builder::Flush() {
  if (buffered_ == 0) return Ok();
  std::span<const std::byte> bytes(buffer_, buffered_);
  data_sum_.Update(bytes);
  if (!IsAllZero(bytes)) MS_RETURN_IF_ERROR(env_->PWrite(fd_, bytes, buffer_file_offset_));
  buffer_file_offset_ += buffered_;
  buffered_ = 0;
  return Ok();
}

Status Builder::Add(std::span<const std::byte> key, std::span<const std::byte> value) {
  if (value.size() >= kTombstoneLength) {
    return Fail(Code::kInvalidArgument, "msf builder: value larger than 4 GiB - 2 bytes");
  }
  return Append(key, value, false);
}

Status Builder::AddTombstone(std::span<const std::byte> key) {
  if (!options_.delta) {
    return Fail(
        Code::kInvalidArgument,
        "msf builder: a tombstone (deleted key) in a full version; only a delta holds them");
  }
  MS_RETURN_IF_ERROR(Append(key, {}, true));
  ++tombstone_count_;
  return Ok();
}

Status Builder::Append(std::span<const std::byte> key, std::span<const std::byte> value,
                       bool tombstone) {
  if (finished_) return Fail(Code::kInternal, "msf builder: Add after Finish");
  if (key.size() > UINT32_MAX) {
    return Fail(Code::kInvalidArgument, "msf builder: key larger than 4 GiB");
  }
  if (data_bytes_ + kEntryHeaderSize + key.size() + value.size() > kOffsetMask) {
    return Fail(Code::kInvalidArgument, "msf builder: data larger than 2^48 bytes");
  }
  std::byte header[kEntryHeaderSize];
  StoreU32(header, static_cast<uint32_t>(key.size()));
  StoreU32(header + 4, tombstone ? kTombstoneLength : static_cast<uint32_t>(value.size()));
  entries_.push_back({HashKey(key, options_.hash_seed), data_bytes_});
  for (std::span<const std::byte> part : {std::span<const std::byte>(header), key, value}) {
    while (!part.empty()) {
      // Each buffer ends on a chunk boundary of the file, so every write but the last is
      // chunk-aligned at both ends.
      size_t room = options_.chunk_bytes - (buffer_file_offset_ % options_.chunk_bytes) - buffered_;
      size_t n = std::min(room, part.size());
      std::memcpy(buffer_ + buffered_, part.data(), n);
      buffered_ += n;
      part = part.subspan(n);
      if (n == room) MS_RETURN_IF_ERROR(Flush());
    }
  }
  data_bytes_ += kEntryHeaderSize + key.size() + value.size();
  return Ok();
}

Result<std::vector<std::byte>> Builder::ReadKey(uint64_t data_offset, bool* tombstone) {
  std::byte header[kEntryHeaderSize];
  uint64_t at = kHeaderSize + data_offset;
  MS_ASSIGN_OR_RETURN(size_t n, env_->PRead(fd_, header, at));
  if (n != sizeof header) return Fail(Code::kIOError, "msf builder: short read of an entry back");
  *tombstone = LoadU32(header + 4) == kTombstoneLength;
  std::vector<std::byte> key(LoadU32(header));
  MS_ASSIGN_OR_RETURN(n, env_->PRead(fd_, key, at + kEntryHeaderSize));
  if (n != key.size()) return Fail(Code::kIOError, "msf builder: short read of a key back");
  return key;
}

Status Builder::CheckDuplicate(const Entry& a, const Entry& b, uint64_t ordinal_a,
                               uint64_t ordinal_b) {
  if (a.hash != b.hash) return Ok();
  bool deleted_a = false, deleted_b = false;
  MS_ASSIGN_OR_RETURN(auto key_a, ReadKey(a.offset, &deleted_a));
  MS_ASSIGN_OR_RETURN(auto key_b, ReadKey(b.offset, &deleted_b));
  if (key_a != key_b) return Ok();
  auto describe = [this](uint64_t ordinal) {
    return options_.describe_entry ? options_.describe_entry(ordinal)
                                   : "entry " + std::to_string(ordinal + 1);
  };
  std::string shown(reinterpret_cast<const char*>(key_a.data()),
                    std::min<size_t>(key_a.size(), 64));
  // Say which occurrence deletes the key: "upserted and deleted" reads better than "duplicate".
  auto what = [](bool deleted) { return deleted ? std::string(" (deleted)") : std::string(); };
  return Fail(Code::kInvalidArgument, "duplicate key \"" + shown + "\" at " + describe(ordinal_b) +
                                          what(deleted_b) + " (first at " + describe(ordinal_a) +
                                          what(deleted_a) + ")");
}

Status Builder::BuildIndex(std::vector<uint64_t>* slots) {
  const uint64_t n = entries_.size();
  uint64_t capacity = std::bit_ceil(std::max<uint64_t>(
      {n + 1, static_cast<uint64_t>(std::ceil(static_cast<double>(n) / kMaxLoadFactor)),
       options_.min_index_capacity}));
  slots->assign(capacity, 0);
  // Which entry fills each slot, to compare full hashes when fingerprints collide.
  std::vector<uint64_t> owner(capacity);
  const uint64_t mask = capacity - 1;
  for (uint64_t e = 0; e < n; ++e) {
    const Entry& entry = entries_[e];
    const uint64_t fp = Fingerprint(entry.hash);
    uint64_t i = entry.hash & mask;
    for (; (*slots)[i] != 0; i = (i + 1) & mask) {
      if (((*slots)[i] >> kFingerprintShift) == fp) {
        MS_RETURN_IF_ERROR(CheckDuplicate(entries_[owner[i]], entry, owner[i], e));
      }
    }
    (*slots)[i] = fp << kFingerprintShift | entry.offset;
    owner[i] = e;
  }
  return Ok();
}

std::vector<std::byte> Builder::EncodeHeader(const BuildResult& r, uint64_t data_sum,
                                             uint64_t index_offset, uint64_t index_len,
                                             uint64_t index_sum) const {
  std::vector<std::byte> h(kHeaderSize);
  std::memcpy(h.data() + kOffMagic, kMagic, sizeof kMagic);
  StoreU32(h.data() + kOffFormatVersion, kFormatVersion);
  StoreU32(h.data() + kOffHeaderSize, kHeaderSize);
  StoreU64(h.data() + kOffFileSize, r.file_size);
  StoreU64(h.data() + kOffCreated, static_cast<uint64_t>(options_.created_unix_ns));
  StoreU64(h.data() + kOffEntryCount, r.entry_count);
  StoreU64(h.data() + kOffHashSeed, options_.hash_seed);
  StoreU32(h.data() + kOffSectionCount, 2);
  if (options_.delta) {
    StoreU32(h.data() + kOffFlags, kFlagDelta);
    std::memcpy(h.data() + kOffBaseVersion, options_.delta->version.data(),
                options_.delta->version.size());
    StoreU64(h.data() + kOffBaseChecksum, options_.delta->checksum);
    StoreU32(h.data() + kOffChainDepth, options_.delta->chain_depth);
    StoreU64(h.data() + kOffTombstoneCount, tombstone_count_);
  }
  std::memcpy(h.data() + kOffModel, options_.model.data(), options_.model.size());
  std::memcpy(h.data() + kOffVersion, options_.version.data(), options_.version.size());
  auto put_section = [&](size_t i, uint32_t kind, uint64_t off, uint64_t len, uint64_t sum) {
    std::byte* s = h.data() + kOffSections + i * kSectionEntrySize;
    StoreU32(s, kind);
    StoreU64(s + 8, off);
    StoreU64(s + 16, len);
    StoreU64(s + 24, sum);
  };
  put_section(0, kSectionData, kHeaderSize, data_bytes_, data_sum);
  put_section(1, kSectionIndex, index_offset, index_len, index_sum);
  StoreU64(h.data() + kOffHeaderChecksum, Xxh3(std::span(h).first(kOffHeaderChecksum)));
  return h;
}

// The reader's delta header checks (reader.cc, CheckDeltaFields), as argument errors.
Status Builder::CheckDeltaOptions() const {
  if (!options_.delta) return Ok();
  const DeltaBase& base = *options_.delta;
  if (auto valid = ValidateVersionName(base.version); !valid) {
    return Fail(Code::kInvalidArgument,
                "msf builder: delta base version: " + valid.error().message());
  }
  if (base.version == options_.version) {
    return Fail(Code::kInvalidArgument,
                "msf builder: delta " + options_.version + " cannot be its own base");
  }
  if (base.checksum == 0) {
    return Fail(Code::kInvalidArgument, "msf builder: delta base checksum is zero");
  }
  if (base.chain_depth == 0 || base.chain_depth > kMaxChainDeltas) {
    return Fail(Code::kInvalidArgument,
                "msf builder: delta chain depth " + std::to_string(base.chain_depth) +
                    " is out of range 1.." + std::to_string(kMaxChainDeltas));
  }
  return Ok();
}

Result<BuildResult> Builder::Finish() {
  if (finished_) return Fail(Code::kInternal, "msf builder: Finish called twice");
  finished_ = true;
  if (options_.model.size() >= kNameField || options_.version.size() >= kNameField) {
    return Fail(Code::kInvalidArgument, "msf builder: model or version longer than 63 bytes");
  }
  MS_RETURN_IF_ERROR(CheckDeltaOptions());
  MS_RETURN_IF_ERROR(Flush());
  std::vector<uint64_t> slots;
  MS_RETURN_IF_ERROR(BuildIndex(&slots));
  auto index_bytes = std::as_bytes(std::span(slots));
  const uint64_t index_offset = AlignUp(kHeaderSize + data_bytes_);
  for (uint64_t off = 0; off < index_bytes.size(); off += options_.chunk_bytes) {
    auto part = index_bytes.subspan(
        off, std::min<uint64_t>(options_.chunk_bytes, index_bytes.size() - off));
    MS_RETURN_IF_ERROR(env_->PWrite(fd_, part, index_offset + off));
  }
  BuildResult result;
  result.entry_count = entries_.size();
  result.file_size = AlignUp(index_offset + index_bytes.size());
  // Also trims space a caller reserved with fallocate beyond the real size.
  MS_RETURN_IF_ERROR(env_->Truncate(fd_, result.file_size));
  auto header =
      EncodeHeader(result, data_sum_.Digest(), index_offset, index_bytes.size(), Xxh3(index_bytes));
  MS_RETURN_IF_ERROR(env_->PWrite(fd_, header, 0));
  result.header_checksum = LoadU64(header.data() + kOffHeaderChecksum);
  return result;
}

}  // namespace modelswap::msf
