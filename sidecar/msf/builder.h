// Writing an .msf file in one streaming pass (layout in msf/format.h).
//
// Entries are appended to the DATA section as they come, in large 2 MiB-aligned writes (on Linux
// the page cache then keeps 2 MiB folios, which makes prefaulting the file later several times
// faster), checksummed on the way. Finish() builds the INDEX from the (hash, offset) pairs kept in
// memory (16 bytes an entry), appends it, and writes the header last. The caller owns the file:
// it opens a temp file, and fsyncs and renames it after Finish() (see sidecar/writer/writer.h).
//
// A delta (BuildOptions::delta, format.h) also takes tombstones (AddTombstone) and records its
// base; the caller computes chain_depth (the base's + 1, or 1 on a full base).
//
// Duplicate keys are an error naming both entries (describe_entry turns an entry's ordinal into
// words such as "line 17"). Keys are compared in full only when fingerprints collide, by reading
// the earlier key back from the file.
//
// Thread safety: one thread per Builder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/checksum.h"
#include "common/env.h"
#include "common/status.h"

namespace modelswap::msf {

// The base a delta file names (format.h, "Header").
struct DeltaBase {
  std::string version;
  uint64_t checksum = 0;     // the base file's header_checksum
  uint32_t chain_depth = 1;  // deltas from the full base up to and including the new file
};

struct BuildOptions {
  std::string model;
  std::string version;
  int64_t created_unix_ns = 0;
  uint64_t hash_seed = 0x6d6f64656c737761;  // "modelswa"
  size_t chunk_bytes = 4 << 20;             // write size; a multiple of 2 MiB
  // The index gets at least this many slots (rounded up to a power of two). A version written on
  // a base (sidecar/writer/base_layout.h) keeps the base's capacity and seed, so that keys it
  // shares with the base land in the same slots and the index changes only where keys changed.
  uint64_t min_index_capacity = 0;
  // Turns an entry ordinal (0-based, in Add order) into words for error messages.
  std::function<std::string(uint64_t)> describe_entry = nullptr;
  // Set: the file is a delta on this base (checked in Finish: a valid version name other than
  // `version`, a non-zero checksum, depth 1..kMaxChainDeltas).
  std::optional<DeltaBase> delta = std::nullopt;
};

struct BuildResult {
  uint64_t file_size = 0;
  uint64_t entry_count = 0;
  uint64_t header_checksum = 0;
};

class Builder {
 public:
  // fd must be open for reading and writing at offset 0 of an empty file.
  Builder(Env* env, int fd, BuildOptions options);
  ~Builder();
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;

  // Appends one entry. Keys are any bytes of at most 4 GiB - 1, values at most 4 GiB - 2 (the
  // largest length marks a tombstone).
  [[nodiscard]] Status Add(std::span<const std::byte> key, std::span<const std::byte> value);
  [[nodiscard]] Status Add(std::string_view key, std::string_view value) {
    return Add(std::as_bytes(std::span(key)), std::as_bytes(std::span(value)));
  }

  // Delta files only (kInvalidArgument otherwise): appends a tombstone deleting key. Duplicate-
  // key detection covers tombstones too: a key both upserted and deleted is an error naming both
  // entries (describe_entry; AddTombstone calls count as entries, in order with Add).
  [[nodiscard]] Status AddTombstone(std::span<const std::byte> key);
  [[nodiscard]] Status AddTombstone(std::string_view key) {
    return AddTombstone(std::as_bytes(std::span(key)));
  }

  // Bytes of DATA written so far (for progress and sizing).
  uint64_t data_bytes() const { return data_bytes_; }
  uint64_t entry_count() const { return entries_.size(); }  // tombstones included
  uint64_t tombstone_count() const { return tombstone_count_; }

  // Writes INDEX and header. The file is complete but not yet fsynced.
  [[nodiscard]] Result<BuildResult> Finish();

 private:
  struct Entry {
    uint64_t hash;
    uint64_t offset;  // within DATA
  };
  Status Flush();
  Status Append(std::span<const std::byte> key, std::span<const std::byte> value, bool tombstone);
  Status CheckDeltaOptions() const;
  Status WriteAligned(std::span<const std::byte> bytes, uint64_t file_offset);
  Result<std::vector<std::byte>> ReadKey(uint64_t data_offset, bool* tombstone);
  Status BuildIndex(std::vector<uint64_t>* slots);
  Status CheckDuplicate(const Entry& a, const Entry& b, uint64_t ordinal_a, uint64_t ordinal_b);
  std::vector<std::byte> EncodeHeader(const BuildResult& result, uint64_t data_sum,
                                      uint64_t index_offset, uint64_t index_len,
                                      uint64_t index_sum) const;

  Env* env_;
  int fd_;
  BuildOptions options_;
  std::byte* buffer_ = nullptr;  // chunk_bytes, 2 MiB aligned
  size_t buffered_ = 0;
  uint64_t buffer_file_offset_;  // file offset of buffer_[0]
  uint64_t data_bytes_ = 0;
  uint64_t tombstone_count_ = 0;
  std::vector<Entry> entries_;
  Xxh3Stream data_sum_;
  bool finished_ = false;
};

}  // namespace modelswap::msf
