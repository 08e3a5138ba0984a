// Reading and validating .msf files (layout in msf/format.h).
//
// Reader is a view over bytes the caller keeps alive (usually a read-only mapping). Opening checks
// the header in O(1); VerifyLevel::kFull also checks every section checksum, walks DATA and
// proves INDEX is an index of it (format.h, "Reader checks"): after it, Find(key) answers every
// entry of DATA, and nothing else. Lookups are bounds-checked
// anyway, so even an unverified or maliciously crafted file cannot make a Reader read outside
// its span: the worst it can do is answer "not found".
//
// Every rejection is a kCorruption Error whose message starts with "msf: " and names the failed
// check, e.g. "msf: header checksum mismatch".
//
// Thread safety: a Reader is immutable after Open; any number of threads may look up at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sidecar/msf/format.h"

namespace modelswap::msf {

struct SectionInfo {
  uint32_t kind = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t checksum = 0;
};

struct Header {
  uint32_t format_version = 0;
  uint64_t file_size = 0;
  int64_t created_unix_ns = 0;
  uint64_t entry_count = 0;
  uint64_t hash_seed = 0;
  std::string model;
  std::string version;
  std::vector<SectionInfo> sections;
  uint64_t header_checksum = 0;
  // Delta files only (format.h); all empty/zero in a full file.
  bool delta = false;
  std::string base_version;
  uint64_t base_checksum = 0;
  uint32_t chain_depth = 0;
  uint64_t tombstone_count = 0;  // included in entry_count
};

// What one layer says about a key.
enum class Presence { kAbsent, kValue, kTombstone };
struct Probe {
  Presence presence = Presence::kAbsent;
  std::span<const std::byte> value;  // kValue only: points into the file's bytes
};

enum class VerifyLevel {
  kHeader,  // O(1): header fields, checksum and section table
  kFull,    // also every section checksum, DATA walked, INDEX proven: reads the whole file
};

// Parses and checks the header and section table against file.size().
[[nodiscard]] Result<Header> ParseHeader(std::span<const std::byte> file);
// The same checks on the header page alone (its first 4096 bytes are read) of a file of
// file_size bytes: for callers that hold only the header, e.g. a chunked version's first chunk.
[[nodiscard]] Result<Header> ParseHeaderPage(std::span<const std::byte> page, uint64_t file_size);

// Checks every section checksum and walks DATA and INDEX. `file` must be what ParseHeader saw.
// on_progress, if set, is called with bytes verified so far (for long verifies).
[[nodiscard]] Status VerifyContents(std::span<const std::byte> file, const Header& header,
                                    const std::function<void(uint64_t)>& on_progress = {});

class Reader {
 public:
  [[nodiscard]] static Result<Reader> Open(std::span<const std::byte> file, VerifyLevel level);

  const Header& header() const { return header_; }
  // Entries in the file, tombstones included (a delta's tombstones are indexed entries).
  uint64_t size() const { return header_.entry_count; }
  bool is_delta() const { return header_.delta; }
  uint64_t capacity() const { return slots_.size() / 8; }  // index slots
  // The file's identity: FormatChecksum(header_checksum).
  std::string checksum() const;

  // The layer-level answer: value, tombstone or absent. One index probe run (fingerprints
  // compared first), then at most the matching entry. A tombstone marker in a full file (only
  // possible in one not opened with kFull) reads as absent.
  Probe Lookup(std::span<const std::byte> key) const;
  Probe Lookup(std::string_view key) const { return Lookup(std::as_bytes(std::span(key))); }
  // Lookup given hash == HashKey(key, hash_seed()): a chain whose layers share a seed (the
  // writer's default) hashes a key once for all of them (msf/chain.cc).
  Probe LookupHashed(std::span<const std::byte> key, uint64_t hash) const;
  // Starts loading the cache line of hash's home slot. Never faults and changes no result: a
  // chain prefetches every layer's slot before probing the first, so the layers' index misses
  // overlap instead of adding up.
  void PrefetchSlot(uint64_t hash) const {
    __builtin_prefetch(slots_.data() + (hash & mask_) * 8, /*rw=*/0, /*locality=*/1);
  }
  uint64_t hash_seed() const { return header_.hash_seed; }

  // The value stored for key, pointing into the file's bytes; nullopt if absent. Reads a
  // tombstone as absent: use Lookup (or msf/chain.h) where deltas matter.
  std::optional<std::span<const std::byte>> Find(std::span<const std::byte> key) const;
  std::optional<std::string_view> Find(std::string_view key) const;

  // Calls fn(key, value) for every value entry in DATA order (tombstones skipped); stops early if
  // fn returns false. kCorruption if DATA is malformed (possible only on files not opened with
  // kFull).
  Status ForEach(
      const std::function<bool(std::span<const std::byte>, std::span<const std::byte>)>& fn) const;
  // Like ForEach but also visits tombstones (tombstone == true, value empty).
  Status ForEachEntry(
      const std::function<bool(std::span<const std::byte> key, std::span<const std::byte> value,
                               bool tombstone)>& fn) const;

 private:
  Reader(Header header, std::span<const std::byte> data, std::span<const std::byte> slots);
  uint64_t Slot(uint64_t i) const;

  Header header_;
  std::span<const std::byte> data_;   // DATA section content
  std::span<const std::byte> slots_;  // INDEX content, capacity * 8 bytes
  uint64_t mask_ = 0;
};

// Key hash and the slot fields derived from it (shared with the builder).
uint64_t HashKey(std::span<const std::byte> key, uint64_t seed);
inline uint64_t Fingerprint(uint64_t hash) {
  uint64_t fp = hash >> kFingerprintShift;
  return fp == 0 ? 1 : fp;
}

}  // namespace modelswap::msf
