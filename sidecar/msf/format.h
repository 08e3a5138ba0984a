// The .msf model file format, version 1: constants and the full layout.
//
// An .msf holds one immutable version of a model: a frozen hash map from byte-string keys to
// byte-string values, designed to be mmap'ed read-only and looked up in O(1) with at most about
// two cache misses (one index slot, one entry). Writers: msf/builder.h. Readers: msf/reader.h.
//
// A file is either FULL (every key of the version) or a DELTA (flags bit 0): only the keys
// upserted since its base plus TOMBSTONES for the keys deleted, and a reference to the base by
// version name and header checksum. A version is then a chain: one full base + 1..7 deltas,
// looked up newest layer first, stopping at the first value or tombstone (msf/chain.h). Each
// layer's index fingerprints act as its filter: a key a layer does not hold costs the probed
// slots (about one cache line). No Bloom filter is stored in the file: readers that want one build
// it in memory from DATA when they open a delta (msf/layer_filter.h), so the format does not
// change for it. Readers older than deltas refuse a delta file ("unknown header flags"), so they
// never serve one alone as if it were a version.
//
// File (all integers little-endian; offsets from the start of the file):
//
//   +------------------------------+ 0
//   | header                       | 4096 bytes, one page
//   +------------------------------+ 4096
//   | DATA section                 | entries back to back, then zero padding to 4 KiB
//   +------------------------------+ multiple of 4096
//   | INDEX section                | capacity x u64 slots, then zero padding to 4 KiB
//   +------------------------------+ file_size (multiple of 4096)
//
// Header:
//   off   size  field
//   0     8     magic "\x89MSF\r\n\x1a\n" (PNG's trick: the high byte catches 7-bit transfers,
//               CR LF catches newline conversion, ^Z stops DOS `type`)
//   8     4     format_version = 1
//   12    4     header_size = 4096
//   16    8     file_size: must equal the file's real size (catches truncation and appends)
//   24    8     created_unix_ns (signed)
//   32    8     entry_count
//   40    8     hash_seed: key hash = XXH3_64bits_withSeed(key, hash_seed)
//   48    4     section_count (1..kMaxSections)
//   52    4     flags: bit 0 kFlagDelta (the file is a delta); every other bit must be 0
//   56    8     reserved: must be 0
//   64    64    model: UTF-8, NUL-padded, at most 63 bytes (so at least one NUL)
//   128   64    version: same
//   192   256   section table: kMaxSections entries of 32 bytes; unused entries all zero
//                 +0  4  kind (kSectionData = 1, kSectionIndex = 2)
//                 +4  4  reserved: must be 0
//                 +8  8  offset: multiple of 4096, >= 4096
//                 +16 8  length: bytes of content (padding after it is not counted)
//                 +24 8  checksum: XXH3_64bits (seed 0) of the content bytes
//   448   64    base_version (deltas): NUL-padded like version, non-empty, a valid version
//               name (common/names.h), != version
//   512   8     base_checksum (deltas): the base file's header_checksum (its identity), != 0
//   520   4     chain_depth (deltas): deltas from the full base up to and including this file,
//               1..kMaxChainDeltas (1 = a delta directly on a full version)
//   524   4     reserved: must be 0
//   528   8     tombstone_count (deltas): tombstone entries in DATA (included in entry_count)
//   536   3552  reserved: must be 0
//               In a full file bytes 448..4088 must all be 0.
//   4088  8     header_checksum: XXH3_64bits of bytes [0, 4088)
//
// Sections must be sorted by offset, must not overlap, and must each fit in the file. Exactly one
// DATA and one INDEX section.
//
// DATA entry: u32 key_length, u32 value_length, key bytes, value bytes. No alignment.
// Tombstone entry (deltas only): u32 key_length, u32 value_length = kTombstoneLength, key bytes,
// no value bytes. Indexed like any entry and counted in entry_count; a real value is therefore at
// most 0xFFFFFFFE bytes.
//
// INDEX: length / 8 u64 slots; the slot count ("capacity") is a power of two greater than
// entry_count, so at least one slot is empty and a probe always ends. A slot is 0 when empty,
// else (fingerprint << 48) | entry_offset, where entry_offset is the entry's offset within the
// DATA content and fingerprint is bits 63..48 of the key hash, forced non-zero (0 -> 1).
// Lookup: h = hash(key); i = h & (capacity - 1); probe i, i+1, ... (mod capacity) until an empty
// slot; a slot whose fingerprint matches is compared by key. Slots are 8 bytes, so a probe run
// usually stays within one cache line: one miss for the slot, one for the entry.
//
// The file's identity ("checksum" in manifests and status) is "xxh3:" + 16 hex digits of the
// header_checksum. The header holds every section checksum, so it commits to the whole file.
//
// Reader checks, in order (each failure names its check; see reader.cc, verify.cc):
//   size >= 4096, magic, format_version, header_size, header_checksum, file_size == real size,
//   flags, reserved, names, delta fields (or their absence), section_count, each section entry
//   (kind, reserved, alignment, bounds), order/overlap, required sections, index shape; then with
//   full verification: each section checksum, zero padding, a walk of DATA (every entry in bounds,
//   entry count, tombstone count; no tombstone in a full file), and a proof that INDEX indexes
//   DATA, linear in the file: as many used slots as entries; every used slot points at a whole
//   entry whose key's hash (with hash_seed) gives the slot's fingerprint, and sits in that key's
//   probe sequence (no empty slot between the key's home slot and it); no two slots of a run name
//   one key (no entry twice, no key shadowed); and the slots' offsets are exactly the entry starts
//   (a keyed digest of each set). Checksums alone cannot show this: a file can be re-signed after
//   its index was edited.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace modelswap::msf {

inline constexpr unsigned char kMagic[8] = {0x89, 'M', 'S', 'F', '\r', '\n', 0x1a, '\n'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kAlignment = 4096;
inline constexpr uint32_t kHeaderSize = 4096;
inline constexpr uint32_t kMaxSections = 8;
inline constexpr size_t kNameField = 64;  // model and version fields, NUL-padded

inline constexpr size_t kOffMagic = 0;
inline constexpr size_t kOffFormatVersion = 8;
inline constexpr size_t kOffHeaderSize = 12;
inline constexpr size_t kOffFileSize = 16;
inline constexpr size_t kOffCreated = 24;
inline constexpr size_t kOffEntryCount = 32;
inline constexpr size_t kOffHashSeed = 40;
inline constexpr size_t kOffSectionCount = 48;
inline constexpr size_t kOffFlags = 52;
inline constexpr size_t kOffReserved = 56;
inline constexpr size_t kOffModel = 64;
inline constexpr size_t kOffVersion = 128;
inline constexpr size_t kOffSections = 192;
inline constexpr size_t kSectionEntrySize = 32;
inline constexpr size_t kOffReservedTail = kOffSections + kMaxSections * kSectionEntrySize;
inline constexpr size_t kOffBaseVersion = 448;
inline constexpr size_t kOffBaseChecksum = 512;
inline constexpr size_t kOffChainDepth = 520;
inline constexpr size_t kOffDeltaReserved = 524;
inline constexpr size_t kOffTombstoneCount = 528;
inline constexpr size_t kOffDeltaFieldsEnd = 536;  // reserved (zero) from here to the checksum
inline constexpr size_t kOffHeaderChecksum = 4088;
static_assert(kOffReservedTail == 448 && kOffBaseVersion == kOffReservedTail);
static_assert(kOffBaseChecksum == kOffBaseVersion + kNameField);

inline constexpr uint32_t kFlagDelta = 1;
inline constexpr uint32_t kTombstoneLength = 0xFFFFFFFFu;  // value_length of a tombstone entry
inline constexpr uint32_t kMaxChainDeltas = 7;
inline constexpr uint32_t kMaxChainLayers = kMaxChainDeltas + 1;  // the full base + the deltas

inline constexpr uint32_t kSectionData = 1;
inline constexpr uint32_t kSectionIndex = 2;

inline constexpr size_t kEntryHeaderSize = 8;  // u32 key_length + u32 value_length
inline constexpr int kFingerprintShift = 48;
inline constexpr uint64_t kOffsetMask = (uint64_t{1} << kFingerprintShift) - 1;
// The builder sizes the index so that at most this fraction of slots is used.
inline constexpr double kMaxLoadFactor = 0.7;

inline constexpr uint64_t AlignUp(uint64_t n) {
  return (n + kAlignment - 1) & ~(kAlignment - 1);
}

inline std::string_view SectionKindName(uint32_t kind) {
  switch (kind) {
    case kSectionData:
      return "data";
    case kSectionIndex:
      return "index";
    default:
      return "unknown";
  }
}

}  // namespace modelswap::msf
