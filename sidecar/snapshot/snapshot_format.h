// The snapshot file: one committed state of one region, as written by the snapshot host.
//
// Path: `<snapshot-dir>/<region>/<generation as 20 decimal digits>.snap`, so names sort by
// generation; the host writes `.tmp-<generation>.snap` first and renames it (never read).
//
// Two kinds of file, both starting with a 4096-byte header. All integers little-endian.
//   full   the region's bytes at data_offset, exactly region_bytes long. Blocks that are all zero
//          are not written: they are holes (sparse file) and read back as zeros.
//   delta  the blocks that changed since an older snapshot of the same region (its parent, named
//          by generation and data checksum): an index of entry_count u64 block numbers, strictly
//          ascending, bit 63 set when the block is now all zeros (nothing stored for it), padded
//          with zeros to a multiple of 4096 bytes; then the stored blocks packed in index order,
//          each block_bytes long except the region's last block, which ends at region_bytes.
//          The state at this generation is the parent's state with these blocks replaced; a
//          chain of deltas ends at a full file. So a snapshot of a mostly idle region writes
//          only what the app changed (the host picks the kind: snapshot_host.h).
//
//   offset size field                 meaning
//   ------ ---- --------------------- -------------------------------------------------------
//        0    8 magic                 kSnapshotMagic, the bytes "MSWPSNAP"
//        8    4 format_version        kSnapshotFormatVersion (1)
//       12    4 header_bytes          kSnapshotHeaderBytes (4096)
//       16    4 block_bytes           the region's block size (a restored region gets the same)
//       20    4 name_bytes            length of name, 1..63
//       24    8 region_bytes          size of the state
//       32    8 generation            the commit generation this file holds (== file name)
//       40    8 created_unix_ns       wall clock when the host wrote it (diagnostics)
//       48    8 data_offset           kSnapshotHeaderBytes
//       56    8 data_checksum         XXH3-64 (seed 0) of every byte after the header: full, the
//                                     region_bytes bytes (holes as zeros); delta, index with its
//                                     padding, then the stored blocks
//       64    8 stored_bytes          block bytes actually written (non-zero blocks)
//       72   64 name                  the region name, NUL-padded (== directory name)
//      136    4 kind                  0 = full, 1 = delta
//      140    4 reserved              zero
//      144    8 parent_generation     delta: the snapshot it applies to (< generation); full: 0
//      152    8 parent_data_checksum  delta: that snapshot's data_checksum; full: 0
//      160    8 entry_count           delta: index entries, <= the region's block count; full: 0
//      168    8 header_checksum       XXH3-64 (seed 0) of bytes [0, 168)
//      176 3920 reserved              zero
//   file size: full, data_offset + region_bytes; delta, data_offset + round_up(8 * entry_count,
//   4096) + stored_bytes.
//
// Reader checks, in order, each with its own error: file at least header_bytes long; magic;
// format version; header_bytes; header checksum; name length and characters; name equals the
// directory; block size; region size; generation equals the file name; data offset; kind and its
// fields; file size; then, while reading a delta's index, each entry's block number and order,
// and the stored bytes the index implies; after reading all data, the data checksum. Restoring
// a delta also checks that its parent's header carries the generation and data checksum named.
//
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelswap::snapshot {

// "MSWPSNAP" as a little-endian u64.
inline constexpr uint64_t kSnapshotMagic = 0x50414E535057534DULL;
inline constexpr uint32_t kSnapshotFormatVersion = 1;
inline constexpr uint32_t kSnapshotHeaderBytes = 4096;
inline constexpr size_t kSnapshotHeaderChecksumOffset = 168;
inline constexpr uint64_t kDeltaZeroBlock = uint64_t{1} << 63;  // index entry: block is now zero

enum class SnapshotKind : uint32_t { kFull = 0, kDelta = 1 };

struct SnapshotHeader {
  std::string name;
  uint32_t block_bytes = 0;
  uint64_t region_bytes = 0;
  uint64_t generation = 0;
  uint64_t created_unix_ns = 0;
  uint64_t data_checksum = 0;
  uint64_t stored_bytes = 0;
  SnapshotKind kind = SnapshotKind::kFull;
  uint64_t parent_generation = 0;     // delta only
  uint64_t parent_data_checksum = 0;  // delta only
  uint64_t entry_count = 0;           // delta only
};

// Bytes of a delta's index, padding included.
uint64_t DeltaIndexBytes(uint64_t entry_count);
// Bytes after the header that the header says the file holds.
uint64_t SnapshotDataBytes(const SnapshotHeader& header);

using HeaderBytes = std::array<std::byte, kSnapshotHeaderBytes>;

HeaderBytes EncodeSnapshotHeader(const SnapshotHeader& header);
// Checks everything the header alone can show (all but the file size and the data checksum).
[[nodiscard]] Result<SnapshotHeader> DecodeSnapshotHeader(std::span<const std::byte> bytes);
// DecodeSnapshotHeader plus the checks against where the file was found.
[[nodiscard]] Result<SnapshotHeader> CheckSnapshotHeader(std::span<const std::byte> bytes,
                                                         std::string_view expected_name,
                                                         uint64_t expected_generation,
                                                         uint64_t file_size);

// "<generation, 20 digits>.snap"
std::string SnapshotFileName(uint64_t generation);
// The generation a snapshot file name holds; nullopt for anything else (temp files included).
std::optional<uint64_t> ParseSnapshotFileName(std::string_view name);
// `<snapshot_dir>/<region>`
std::string RegionSnapshotDir(std::string_view snapshot_dir, std::string_view region);
inline constexpr std::string_view kSnapshotTempPrefix = ".tmp-";

}  // namespace modelswap::snapshot
