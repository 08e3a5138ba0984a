// .msf validation and lookups. Every check has its own message;
// tests/sidecar/msf/msf_reader_test.cc has one test per check.
#include "sidecar/msf/reader.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>

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

// Mixes an entry's DATA offset into the digest that proves the index's slots and DATA's entry
// starts are the same set (see WalkIndex). Keyed per verification with a random key, so a crafted
// file cannot choose offsets whose digests collide.
uint64_t MixOffset(uint64_t offset, uint64_t key) {
  std::byte bytes[8];
  StoreU64(bytes, offset);
  return Xxh3WithSeed(bytes, key);
}

uint64_t RandomDigestKey() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

// Every entry lies inside DATA, DATA holds exactly entry_count entries and nothing after them.
// Sums MixOffset of every entry start into *digest (8 bytes of state however many entries).
Status WalkData(std::span<const std::byte> data, uint64_t entry_count, uint64_t digest_key,
                uint64_t* digest) {
  Cursor c(data);
  uint64_t count = 0;
  while (c.remaining() > 0) {
    uint64_t at = c.position();
    uint32_t key_len = 0, value_len = 0;
    if (!c.GetU32(&key_len) || !c.GetU32(&value_len)) {
      return Corrupt("data section ends inside an entry header at offset " + std::to_string(at));
    }
    if (!c.Skip(uint64_t{key_len} + value_len)) {
      return Corrupt("entry at data offset " + std::to_string(at) + " extends past the section");
    }
    if (count == entry_count) {
      return Corrupt("data section holds more entries than the header's entry count");
    }
    ++count;
    *digest += MixOffset(at, digest_key);
  }
  if (count != entry_count) {
    return Corrupt("data section holds " + std::to_string(count) + " entries but the header says " +
                   std::to_string(entry_count));
  }
  return Ok();
}

// The key of the entry starting at `offset` of DATA, if a whole entry fits there.
std::optional<std::span<const std::byte>> KeyAt(std::span<const std::byte> data, uint64_t offset) {
  if (offset > data.size()) return std::nullopt;
  Cursor c(data.subspan(offset));
  uint32_t key_len = 0, value_len = 0;
  std::span<const std::byte> key, value;
  if (!c.GetU32(&key_len) || !c.GetU32(&value_len) || !c.GetBytes(key_len, &key) ||
      !c.GetBytes(value_len, &value)) {
    return std::nullopt;
  }
  return key;
}

struct RunSlot {
  uint64_t hash;
  uint64_t offset;
  uint64_t slot;
  std::span<const std::byte> key;
};

bool KeyLess(std::span<const std::byte> a, std::span<const std::byte> b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

// Within one run of used slots (between two empty ones) no two slots may name the same key: a
// key's probe sequence stops at the first match, so the second would never be found. Two slots
// for one key share its home and so its run; sorting by hash (keys only on equal hashes) keeps
// this O(run log run), runs being short in any index the builder makes (load <= 0.7).
Status CheckRunKeys(std::vector<RunSlot>& run) {
  if (run.size() < 2) return Ok();
  std::sort(run.begin(), run.end(), [](const RunSlot& a, const RunSlot& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return KeyLess(a.key, b.key);
  });
  for (size_t i = 1; i < run.size(); ++i) {
    const RunSlot& a = run[i - 1];
    const RunSlot& b = run[i];
    if (a.hash != b.hash || !std::ranges::equal(a.key, b.key)) continue;
    if (a.offset == b.offset) {
      return Corrupt("index slots " + std::to_string(a.slot) + " and " + std::to_string(b.slot) +
                     " both point at the entry at data offset " + std::to_string(a.offset));
    }
    return Corrupt("duplicate key in the data section: entries at data offsets " +
                   std::to_string(a.offset) + " and " + std::to_string(b.offset) +
                   " (index slots " + std::to_string(a.slot) + " and " + std::to_string(b.slot) +
                   ")");
  }
  return Ok();
}

// Proves the index indexes the data, in time linear in the file (plus the per-run sort above):
//  - as many used slots as entries;
//  - every used slot points at a whole entry whose key hashes (with the header's seed) to the
//    slot's fingerprint, and lies in its key's probe sequence: no empty slot between the key's
//    home slot and it (the length of the run of used slots ending at a slot bounds that
//    distance);
//  - no two slots of a run name one key (CheckRunKeys): no entry listed twice, no key shadowed;
//  - the slots' offsets are exactly the entry starts: with the counts equal and no offset
//    listed twice, the keyed digests of the two sets agree only if they are the same set (up to
//    a 2^-64 chance, with a key the file cannot know).
// Together: Find(key) returns every entry of DATA, and nothing that is not one.
Status WalkIndex(std::span<const std::byte> slots, std::span<const std::byte> data, const Header& h,
                 uint64_t digest_key, uint64_t starts_digest) {
  const uint64_t capacity = slots.size() / 8;
  const uint64_t mask = capacity - 1;
  auto slot_at = [&](uint64_t i) { return LoadU64(slots.data() + i * 8); };
  uint64_t used = 0, first_empty = capacity;
  for (uint64_t i = 0; i < capacity; ++i) {
    if (slot_at(i) != 0) {
      ++used;
    } else if (first_empty == capacity) {
      first_empty = i;
    }
  }
  if (used != h.entry_count) {
    return Corrupt("index has " + std::to_string(used) + " used slots for " +
                   std::to_string(h.entry_count) + " entries");
  }
  // entry_count < capacity (CheckIndexShape), so first_empty exists. Walking from just after it
  // makes every run start inside the walk; the walk ends on first_empty, which closes the last.
  uint64_t digest = 0, run_length = 0;
  std::vector<RunSlot> run;
  for (uint64_t step = 1; step <= capacity; ++step) {
    const uint64_t p = (first_empty + step) & mask;
    const uint64_t slot = slot_at(p);
    if (slot == 0) {
      MS_RETURN_IF_ERROR(CheckRunKeys(run));
      run.clear();
      run_length = 0;
      continue;
    }
    ++run_length;
    const uint64_t offset = slot & kOffsetMask;
    auto key = KeyAt(data, offset);
    if (!key) {
      return Corrupt("index slot " + std::to_string(p) + " does not point at an entry");
    }
    const uint64_t hash = HashKey(*key, h.hash_seed);
    if ((slot >> kFingerprintShift) != Fingerprint(hash)) {
      return Corrupt("index slot " + std::to_string(p) +
                     " fingerprint does not match its entry's key (an edited slot, or a hash "
                     "seed that is not the one the index was built with)");
    }
    const uint64_t home = hash & mask;
    if (((p - home) & mask) >= run_length) {
      return Corrupt("index slot " + std::to_string(p) +
                     " is not reachable from its key's home slot " + std::to_string(home) +
                     " (an empty slot lies between)");
    }
    digest += MixOffset(offset, digest_key);
    run.push_back(RunSlot{hash, offset, p, *key});
  }
  if (digest != starts_digest) {
    return Corrupt(
        "index slots do not point at the starts of the data section's entries (a slot points "
        "inside an entry, or an entry is missing from the index)");
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
  const auto data_bytes = file.subspan(data.offset, data.length);
  const uint64_t digest_key = RandomDigestKey();
  uint64_t starts_digest = 0;
  MS_RETURN_IF_ERROR(WalkData(data_bytes, header.entry_count, digest_key, &starts_digest));
  return WalkIndex(file.subspan(index.offset, index.length), data_bytes, header, digest_key,
                   starts_digest);
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
