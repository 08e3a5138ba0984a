// .msf header validation (the O(1) checks) and lookups; full verification is in verify.cc.
// Every check has its own message; tests/sidecar/msf/msf_reader_test.cc and
// msf_delta_test.cc have one test per check.
#include "sidecar/msf/reader.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/msf/cursor.h"
#include "sidecar/msf/reader_internal.h"

namespace modelswap::msf {
namespace {

using internal::AllZero;
using internal::Corrupt;
using internal::FindSection;

// A NUL-padded name field: text up to the first NUL, then only NULs, at least one NUL.
Result<std::string> ParseName(std::span<const std::byte> field, std::string_view which) {
  const char* chars = reinterpret_cast<const char*>(field.data());
  size_t len = strnlen(chars, field.size());
  if (len == field.size()) return Corrupt(std::string(which) + " name is not NUL-terminated");
  if (!AllZero(field.subspan(len))) {
    return Corrupt(std::string(which) + " name has bytes after its NUL terminator");
  }
  return std::string(chars, len);
}

Result<SectionInfo> ParseSection(std::span<const std::byte> entry, size_t i, uint64_t file_size) {
  Cursor c(entry);
  SectionInfo s;
  uint32_t reserved = 0;
  (void)(c.GetU32(&s.kind) && c.GetU32(&reserved) && c.GetU64(&s.offset) && c.GetU64(&s.length) &&
         c.GetU64(&s.checksum));  // entry is exactly kSectionEntrySize bytes: cannot fail
  std::string name = "section " + std::to_string(i);
  if (s.kind != kSectionData && s.kind != kSectionIndex) {
    return Corrupt(name + " has unknown kind " + std::to_string(s.kind));
  }
  if (reserved != 0) return Corrupt(name + " reserved field is not zero");
  if (s.offset % kAlignment != 0) return Corrupt(name + " offset is not 4 KiB aligned");
  if (s.offset < kHeaderSize) return Corrupt(name + " overlaps the header");
  if (s.offset > file_size || s.length > file_size - s.offset) {
    return Corrupt(name + " extends past the end of the file");
  }
  return s;
}

Status CheckSectionLayout(const Header& h) {
  uint64_t prev_end = kHeaderSize;
  int data = 0, index = 0;
  for (size_t i = 0; i < h.sections.size(); ++i) {
    const SectionInfo& s = h.sections[i];
    if (s.offset < prev_end) {
      return Corrupt("section " + std::to_string(i) +
                     " overlaps or precedes the section before it");
    }
    prev_end = AlignUp(s.offset + s.length);  // cannot overflow: both <= file_size < 2^63
    data += s.kind == kSectionData;
    index += s.kind == kSectionIndex;
  }
  if (data != 1) return Corrupt("file must have exactly one data section");
  if (index != 1) return Corrupt("file must have exactly one index section");
  return Ok();
}

Status CheckIndexShape(const Header& h) {
  const SectionInfo& index = FindSection(h, kSectionIndex);
  if (index.length % 8 != 0) return Corrupt("index length is not a multiple of 8");
  uint64_t capacity = index.length / 8;
  if (capacity == 0 || !std::has_single_bit(capacity)) {
    return Corrupt("index capacity is not a power of two");
  }
  if (h.entry_count >= capacity) return Corrupt("entry count does not fit the index capacity");
  if (FindSection(h, kSectionData).length > kOffsetMask) {
    return Corrupt("data section is larger than 2^48 bytes");
  }
  return Ok();
}

Status CheckHeaderFields(std::span<const std::byte> file, uint64_t file_size, Header* h) {
  Cursor c(file.subspan(kOffFormatVersion));
  uint32_t header_size = 0, section_count = 0, flags = 0;
  uint64_t created = 0, reserved = 0;
  (void)(c.GetU32(&h->format_version) && c.GetU32(&header_size) && c.GetU64(&h->file_size) &&
         c.GetU64(&created) && c.GetU64(&h->entry_count) && c.GetU64(&h->hash_seed) &&
         c.GetU32(&section_count) && c.GetU32(&flags) && c.GetU64(&reserved));
  h->created_unix_ns = static_cast<int64_t>(created);
  if (h->format_version != kFormatVersion) {
    return Corrupt("unsupported format version " + std::to_string(h->format_version) +
                   " (this build reads version " + std::to_string(kFormatVersion) + ")");
  }
  if (header_size != kHeaderSize) return Corrupt("header size field is not 4096");
  h->header_checksum = LoadU64(file.data() + kOffHeaderChecksum);
  if (Xxh3(file.first(kOffHeaderChecksum)) != h->header_checksum) {
    return Corrupt("header checksum mismatch");
  }
  if (h->file_size != file_size) {
    return Corrupt("file size is " + std::to_string(file_size) + " bytes but the header says " +
                   std::to_string(h->file_size) + " (truncated or appended to)");
  }
  if ((flags & ~kFlagDelta) != 0) return Corrupt("unknown header flags");
  h->delta = (flags & kFlagDelta) != 0;
  if (reserved != 0 ||
      !AllZero(file.subspan(kOffDeltaFieldsEnd, kOffHeaderChecksum - kOffDeltaFieldsEnd)) ||
      (h->delta && LoadU32(file.data() + kOffDeltaReserved) != 0)) {
    return Corrupt("reserved header bytes are not zero");
  }
  if (section_count == 0 || section_count > kMaxSections) {
    return Corrupt("section count " + std::to_string(section_count) + " is out of range");
  }
  h->sections.resize(section_count);
  return Ok();
}

// The delta fields (format.h): all zero in a full file; in a delta, a base that is a valid version
// name other than this one, a non-zero base checksum, a depth in 1..kMaxChainDeltas and no more
// tombstones than entries.
Status CheckDeltaFields(std::span<const std::byte> file, Header* h) {
  if (!h->delta) {
    if (!AllZero(file.subspan(kOffBaseVersion, kOffDeltaFieldsEnd - kOffBaseVersion))) {
      return Corrupt(
          "delta fields (base version, base checksum, chain depth, tombstone count) are not zero "
          "in a full (non-delta) file");
    }
    return Ok();
  }
  MS_ASSIGN_OR_RETURN(h->base_version,
                      ParseName(file.subspan(kOffBaseVersion, kNameField), "base version"));
  h->base_checksum = LoadU64(file.data() + kOffBaseChecksum);
  h->chain_depth = LoadU32(file.data() + kOffChainDepth);
  h->tombstone_count = LoadU64(file.data() + kOffTombstoneCount);
  if (h->base_version.empty()) return Corrupt("delta has an empty base version");
  if (auto valid = ValidateVersionName(h->base_version); !valid) {
    return Corrupt("delta base version is not a valid version name: " + valid.error().message());
  }
  if (h->base_version == h->version) {
    return Corrupt("delta " + h->version + " names itself as its base version");
  }
  if (h->base_checksum == 0) return Corrupt("delta has a zero base checksum");
  if (h->chain_depth == 0 || h->chain_depth > kMaxChainDeltas) {
    return Corrupt("delta chain depth " + std::to_string(h->chain_depth) + " is out of range 1.." +
                   std::to_string(kMaxChainDeltas));
  }
  if (h->tombstone_count > h->entry_count) {
    return Corrupt("tombstone count " + std::to_string(h->tombstone_count) +
                   " exceeds the entry count " + std::to_string(h->entry_count));
  }
  return Ok();
}

}  // namespace

uint64_t HashKey(std::span<const std::byte> key, uint64_t seed) {
  return Xxh3WithSeed(key, seed);
}

Result<Header> ParseHeader(std::span<const std::byte> file) {
  return ParseHeaderPage(file, file.size());
}

Result<Header> ParseHeaderPage(std::span<const std::byte> file, uint64_t file_size) {
  if (file.size() < kHeaderSize || file_size < kHeaderSize) {
    return Corrupt("file is " + std::to_string(std::min<uint64_t>(file.size(), file_size)) +
                   " bytes, shorter than the header");
  }
  file = file.first(kHeaderSize);
  if (std::memcmp(file.data(), kMagic, sizeof kMagic) != 0) {
    return Corrupt("bad magic (not an .msf file)");
  }
  Header h;
  MS_RETURN_IF_ERROR(CheckHeaderFields(file, file_size, &h));
  MS_ASSIGN_OR_RETURN(h.model, ParseName(file.subspan(kOffModel, kNameField), "model"));
  MS_ASSIGN_OR_RETURN(h.version, ParseName(file.subspan(kOffVersion, kNameField), "version"));
  MS_RETURN_IF_ERROR(CheckDeltaFields(file, &h));
  for (size_t i = 0; i < kMaxSections; ++i) {
    auto entry = file.subspan(kOffSections + i * kSectionEntrySize, kSectionEntrySize);
    if (i >= h.sections.size()) {
      if (!AllZero(entry))
        return Corrupt("unused section entry " + std::to_string(i) + " is not zero");
      continue;
    }
    MS_ASSIGN_OR_RETURN(h.sections[i], ParseSection(entry, i, file_size));
  }
  MS_RETURN_IF_ERROR(CheckSectionLayout(h));
  MS_RETURN_IF_ERROR(CheckIndexShape(h));
  return h;
}

Reader::Reader(Header header, std::span<const std::byte> data, std::span<const std::byte> slots)
    : header_(std::move(header)), data_(data), slots_(slots), mask_(slots.size() / 8 - 1) {}

Result<Reader> Reader::Open(std::span<const std::byte> file, VerifyLevel level) {
  MS_ASSIGN_OR_RETURN(Header header, ParseHeader(file));
  if (level == VerifyLevel::kFull) MS_RETURN_IF_ERROR(VerifyContents(file, header));
  const SectionInfo& data = FindSection(header, kSectionData);
  const SectionInfo& index = FindSection(header, kSectionIndex);
  return Reader(std::move(header), file.subspan(data.offset, data.length),
                file.subspan(index.offset, index.length));
}

std::string Reader::checksum() const {
  return FormatChecksum(header_.header_checksum);
}

uint64_t Reader::Slot(uint64_t i) const {
  return LoadU64(slots_.data() + i * 8);
}

Probe Reader::Lookup(std::span<const std::byte> key) const {
  return LookupHashed(key, HashKey(key, header_.hash_seed));
}

Probe Reader::LookupHashed(std::span<const std::byte> key, uint64_t hash) const {
  const uint64_t fp = Fingerprint(hash);
  // At most capacity probes: a crafted file with no empty slot still terminates.
  for (uint64_t probe = 0, i = hash & mask_; probe <= mask_; ++probe, i = (i + 1) & mask_) {
    const uint64_t slot = Slot(i);
    if (slot == 0) return {};
    if ((slot >> kFingerprintShift) != fp) continue;
    const uint64_t off = slot & kOffsetMask;
    if (off > data_.size() || data_.size() - off < kEntryHeaderSize) return {};
    const uint64_t key_len = LoadU32(data_.data() + off);
    const uint32_t value_len = LoadU32(data_.data() + off + 4);
    const uint64_t room = data_.size() - off - kEntryHeaderSize;
    const bool tombstone = value_len == kTombstoneLength;
    if (key_len > room || (!tombstone && value_len > room - key_len)) return {};
    const std::byte* k = data_.data() + off + kEntryHeaderSize;
    if (key_len == key.size() && std::memcmp(k, key.data(), key.size()) == 0) {
      // Only a delta may hold tombstones (verify.cc rejects one elsewhere): in an unverified full
      // file the marker is just a malformed entry.
      if (tombstone) return {header_.delta ? Presence::kTombstone : Presence::kAbsent, {}};
      return {Presence::kValue, std::span<const std::byte>(k + key_len, value_len)};
    }
  }
  return {};
}

std::optional<std::span<const std::byte>> Reader::Find(std::span<const std::byte> key) const {
  const Probe p = Lookup(key);
  if (p.presence != Presence::kValue) return std::nullopt;
  return p.value;
}

std::optional<std::string_view> Reader::Find(std::string_view key) const {
  auto value = Find(std::as_bytes(std::span(key)));
  if (!value) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(value->data()), value->size());
}

Status Reader::ForEach(
    const std::function<bool(std::span<const std::byte>, std::span<const std::byte>)>& fn) const {
  return ForEachEntry([&fn](std::span<const std::byte> key, std::span<const std::byte> value,
                            bool tombstone) { return tombstone || fn(key, value); });
}

Status Reader::ForEachEntry(const std::function<bool(std::span<const std::byte>,
                                                     std::span<const std::byte>, bool)>& fn) const {
  Cursor c(data_);
  while (c.remaining() > 0) {
    const uint64_t at = c.position();
    internal::RawEntry e;
    if (!internal::NextEntry(c, &e)) {
      return Corrupt("data section has a truncated entry at offset " + std::to_string(at));
    }
    if (e.tombstone && !header_.delta) {
      return Corrupt("tombstone entry at data offset " + std::to_string(at) +
                     " in a full (non-delta) file");
    }
    if (!fn(e.key, e.value, e.tombstone)) break;
  }
  return Ok();
}

}  // namespace modelswap::msf
