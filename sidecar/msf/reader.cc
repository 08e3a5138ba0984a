// .msf validation and lookups. Every check has its own message;
// tests/sidecar/msf/msf_reader_test.cc has one test per check.
#include "sidecar/msf/reader.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/checksum.h"
#include "sidecar/msf/cursor.h"

namespace modelswap::msf {
namespace {

std::unexpected<Error> Corrupt(std::string what) {
  return Fail(Code::kCorruption, "msf: " + std::move(what));
}

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

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

const SectionInfo& FindSection(const Header& h, uint32_t kind) {
  return *std::find_if(h.sections.begin(), h.sections.end(),
                       [kind](const SectionInfo& s) { return s.kind == kind; });
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

Status CheckHeaderFields(std::span<const std::byte> file, Header* h) {
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
  if (h->file_size != file.size()) {
    return Corrupt("file size is " + std::to_string(file.size()) + " bytes but the header says " +
                   std::to_string(h->file_size) + " (truncated or appended to)");
  }
  if (flags != 0) return Corrupt("unknown header flags");
  if (reserved != 0 ||
      !AllZero(file.subspan(kOffReservedTail, kOffHeaderChecksum - kOffReservedTail))) {
    return Corrupt("reserved header bytes are not zero");
  }
  if (section_count == 0 || section_count > kMaxSections) {
    return Corrupt("section count " + std::to_string(section_count) + " is out of range");
  }
  h->sections.resize(section_count);
  return Ok();
}

}  // namespace

uint64_t HashKey(std::span<const std::byte> key, uint64_t seed) {
  return Xxh3WithSeed(key, seed);
}

Result<Header> ParseHeader(std::span<const std::byte> file) {
  if (file.size() < kHeaderSize) {
    return Corrupt("file is " + std::to_string(file.size()) + " bytes, shorter than the header");
  }
  if (std::memcmp(file.data(), kMagic, sizeof kMagic) != 0) {
    return Corrupt("bad magic (not an .msf file)");
  }
  Header h;
  MS_RETURN_IF_ERROR(CheckHeaderFields(file, &h));
  MS_ASSIGN_OR_RETURN(h.model, ParseName(file.subspan(kOffModel, kNameField), "model"));
  MS_ASSIGN_OR_RETURN(h.version, ParseName(file.subspan(kOffVersion, kNameField), "version"));
  for (size_t i = 0; i < kMaxSections; ++i) {
    auto entry = file.subspan(kOffSections + i * kSectionEntrySize, kSectionEntrySize);
    if (i >= h.sections.size()) {
      if (!AllZero(entry))
        return Corrupt("unused section entry " + std::to_string(i) + " is not zero");
      continue;
    }
    MS_ASSIGN_OR_RETURN(h.sections[i], ParseSection(entry, i, file.size()));
  }
  MS_RETURN_IF_ERROR(CheckSectionLayout(h));
  MS_RETURN_IF_ERROR(CheckIndexShape(h));
  return h;
}

namespace {

// Every entry lies inside DATA, DATA holds exactly entry_count entries and nothing after them.
// Records each entry's start in `starts` (a bitmap over DATA offsets would be larger for big
// values; a sorted vector of starts costs 8 bytes an entry and is searched per index slot).
Status WalkData(std::span<const std::byte> data, uint64_t entry_count,
                std::vector<uint64_t>* starts) {
  Cursor c(data);
  starts->reserve(std::min<uint64_t>(entry_count, data.size() / kEntryHeaderSize));
  while (c.remaining() > 0) {
    uint64_t at = c.position();
    uint32_t key_len = 0, value_len = 0;
    if (!c.GetU32(&key_len) || !c.GetU32(&value_len)) {
      return Corrupt("data section ends inside an entry header at offset " + std::to_string(at));
    }
    if (!c.Skip(uint64_t{key_len} + value_len)) {
      return Corrupt("entry at data offset " + std::to_string(at) + " extends past the section");
    }
    if (starts->size() == entry_count) {
      return Corrupt("data section holds more entries than the header's entry count");
    }
    starts->push_back(at);
  }
  if (starts->size() != entry_count) {
    return Corrupt("data section holds " + std::to_string(starts->size()) +
                   " entries but the header says " + std::to_string(entry_count));
  }
  return Ok();
}

Status WalkIndex(std::span<const std::byte> slots, const std::vector<uint64_t>& starts) {
  uint64_t used = 0;
  for (size_t i = 0; i < slots.size(); i += 8) {
    uint64_t slot = LoadU64(slots.data() + i);
    if (slot == 0) continue;
    ++used;
    uint64_t offset = slot & kOffsetMask;
    if (!std::binary_search(starts.begin(), starts.end(), offset)) {
      return Corrupt("index slot " + std::to_string(i / 8) + " does not point at an entry");
    }
  }
  if (used != starts.size()) {
    return Corrupt("index has " + std::to_string(used) + " used slots for " +
                   std::to_string(starts.size()) + " entries");
  }
  return Ok();
}

// No checksum covers the bytes between sections, so they must be zero: a flipped bit anywhere in
// the file is then caught.
Status CheckPadding(std::span<const std::byte> file, const Header& h) {
  uint64_t at = kHeaderSize;
  for (size_t i = 0; i <= h.sections.size(); ++i) {
    uint64_t next = i < h.sections.size() ? h.sections[i].offset : file.size();
    if (!AllZero(file.subspan(at, next - at))) {
      return Corrupt("non-zero bytes in the padding before " + (i < h.sections.size()
                                                                    ? "section " + std::to_string(i)
                                                                    : std::string("the end")));
    }
    if (i < h.sections.size()) at = h.sections[i].offset + h.sections[i].length;
  }
  return Ok();
}

}  // namespace

Status VerifyContents(std::span<const std::byte> file, const Header& header,
                      const std::function<void(uint64_t)>& on_progress) {
  constexpr uint64_t kStep = 256 << 20;  // report progress every 256 MiB
  uint64_t done = 0;
  for (size_t i = 0; i < header.sections.size(); ++i) {
    const SectionInfo& s = header.sections[i];
    auto bytes = file.subspan(s.offset, s.length);
    Xxh3Stream stream;
    for (uint64_t off = 0; off < bytes.size(); off += kStep) {
      stream.Update(bytes.subspan(off, std::min<uint64_t>(kStep, bytes.size() - off)));
      if (on_progress) on_progress(done + std::min<uint64_t>(off + kStep, bytes.size()));
    }
    done += bytes.size();
    if (stream.Digest() != s.checksum) {
      return Corrupt("section " + std::to_string(i) + " (" + std::string(SectionKindName(s.kind)) +
                     ") checksum mismatch");
    }
  }
  MS_RETURN_IF_ERROR(CheckPadding(file, header));
  const SectionInfo& data = FindSection(header, kSectionData);
  const SectionInfo& index = FindSection(header, kSectionIndex);
  std::vector<uint64_t> starts;
  MS_RETURN_IF_ERROR(WalkData(file.subspan(data.offset, data.length), header.entry_count, &starts));
  return WalkIndex(file.subspan(index.offset, index.length), starts);
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

std::optional<std::span<const std::byte>> Reader::Find(std::span<const std::byte> key) const {
  const uint64_t hash = HashKey(key, header_.hash_seed);
  const uint64_t fp = Fingerprint(hash);
  // At most capacity probes: a crafted file with no empty slot still terminates.
  for (uint64_t probe = 0, i = hash & mask_; probe <= mask_; ++probe, i = (i + 1) & mask_) {
    const uint64_t slot = Slot(i);
    if (slot == 0) return std::nullopt;
    if ((slot >> kFingerprintShift) != fp) continue;
    const uint64_t off = slot & kOffsetMask;
    if (off > data_.size() || data_.size() - off < kEntryHeaderSize) return std::nullopt;
    const uint64_t key_len = LoadU32(data_.data() + off);
    const uint64_t value_len = LoadU32(data_.data() + off + 4);
    const uint64_t room = data_.size() - off - kEntryHeaderSize;
    if (key_len > room || value_len > room - key_len) return std::nullopt;
    const std::byte* k = data_.data() + off + kEntryHeaderSize;
    if (key_len == key.size() && std::memcmp(k, key.data(), key.size()) == 0) {
      return std::span<const std::byte>(k + key_len, value_len);
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> Reader::Find(std::string_view key) const {
  auto value = Find(std::as_bytes(std::span(key)));
  if (!value) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(value->data()), value->size());
}

Status Reader::ForEach(
    const std::function<bool(std::span<const std::byte>, std::span<const std::byte>)>& fn) const {
  Cursor c(data_);
  while (c.remaining() > 0) {
    uint32_t key_len = 0, value_len = 0;
    std::span<const std::byte> key, value;
    if (!c.GetU32(&key_len) || !c.GetU32(&value_len) || !c.GetBytes(key_len, &key) ||
        !c.GetBytes(value_len, &value)) {
      return Corrupt("data section has a truncated entry at offset " +
                     std::to_string(c.position()));
    }
    if (!fn(key, value)) break;
  }
  return Ok();
}

}  // namespace modelswap::msf
