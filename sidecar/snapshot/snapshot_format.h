// The snapshot file: one committed state of one region, as written by the snapshot host.
//
// Path: `<snapshot-dir>/<region>/<generation as 20 decimal digits>.snap`, so names sort by
// generation; the host writes `.tmp-<generation>.snap` first and renames it (never read).
//
// File: a 4096-byte header, then the region's bytes at data_offset, exactly region_bytes long.
// Blocks that are all zero are not written: they are holes (sparse file) and read back as zeros.
// All integers little-endian.
//
//   offset size field            meaning
//   ------ ---- ---------------- ------------------------------------------------------------
//        0    8 magic            kSnapshotMagic, the bytes "MSWPSNAP"
//        8    4 format_version   kSnapshotFormatVersion (1)
//       12    4 header_bytes     kSnapshotHeaderBytes (4096)
//       16    4 block_bytes      the region's block size (a restored region gets the same)
//       20    4 name_bytes       length of name, 1..63
//       24    8 region_bytes     size of the state
//       32    8 generation       the commit generation this file holds (== file name)
//       40    8 created_unix_ns  wall clock when the host wrote it (diagnostics)
//       48    8 data_offset      kSnapshotHeaderBytes
//       56    8 data_checksum    XXH3-64 (seed 0) of the region_bytes bytes at data_offset,
//                                holes included as zeros
//       64    8 stored_bytes     bytes actually written (non-zero blocks), for statistics
//       72   64 name             the region name, NUL-padded (== directory name)
//      136    8 header_checksum  XXH3-64 (seed 0) of bytes [0, 136)
//      144 3952 reserved         zero
//   file size = data_offset + region_bytes
//
// Reader checks, in order, each with its own error: file at least header_bytes long; magic;
// format version; header_bytes; header checksum; name length and characters; name equals the
// directory; block size; region size; generation equals the file name; data offset; file size;
// then, after reading all data, the data checksum.
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
inline constexpr size_t kSnapshotHeaderChecksumOffset = 136;

struct SnapshotHeader {
  std::string name;
  uint32_t block_bytes = 0;
  uint64_t region_bytes = 0;
  uint64_t generation = 0;
  uint64_t created_unix_ns = 0;
  uint64_t data_checksum = 0;
  uint64_t stored_bytes = 0;
};

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
