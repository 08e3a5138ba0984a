// Encoding and checking snapshot file headers (layout in snapshot_format.h).
#include "sidecar/snapshot/snapshot_format.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>

#include "common/checksum.h"
#include "sidecar/client/region/region_file.h"

namespace modelswap::snapshot {
namespace {

static_assert(std::endian::native == std::endian::little, "snapshot files are little-endian");

constexpr size_t kMagicAt = 0, kVersionAt = 8, kHeaderBytesAt = 12, kBlockBytesAt = 16,
                 kNameBytesAt = 20, kRegionBytesAt = 24, kGenerationAt = 32, kCreatedAt = 40,
                 kDataOffsetAt = 48, kDataChecksumAt = 56, kStoredBytesAt = 64, kNameAt = 72,
                 kNameCapacity = 64, kKindAt = 136, kParentGenerationAt = 144,
                 kParentChecksumAt = 152, kEntryCountAt = 160;
static_assert(kNameAt + kNameCapacity == kKindAt);
static_assert(kEntryCountAt + 8 == kSnapshotHeaderChecksumOffset);

template <class T>
void Put(HeaderBytes& out, size_t at, T value) {
  std::memcpy(out.data() + at, &value, sizeof(T));
}

// Unchecked: callers pass a span of at least kSnapshotHeaderBytes.
template <class T>
T Get(std::span<const std::byte> in, size_t at) {
  T value;
  std::memcpy(&value, in.data() + at, sizeof(T));
  return value;
}

Result<SnapshotHeader> Corrupt(std::string message) {
  return Fail(Code::kCorruption, "snapshot: " + message);
}

Status BadKind(std::string message) {
  return Fail(Code::kCorruption, "snapshot: " + message);
}

// The kind and its fields; a full file has all delta fields zero.
Status DecodeKind(std::span<const std::byte> in, SnapshotHeader& h) {
  const auto kind = Get<uint32_t>(in, kKindAt);
  h.parent_generation = Get<uint64_t>(in, kParentGenerationAt);
  h.parent_data_checksum = Get<uint64_t>(in, kParentChecksumAt);
  h.entry_count = Get<uint64_t>(in, kEntryCountAt);
  if (kind == static_cast<uint32_t>(SnapshotKind::kFull)) {
    if (h.parent_generation != 0 || h.parent_data_checksum != 0 || h.entry_count != 0)
      return BadKind("full snapshot with delta fields set");
    return Ok();
  }
  if (kind != static_cast<uint32_t>(SnapshotKind::kDelta))
    return BadKind(fmt::format("unknown kind {}", kind));
  h.kind = SnapshotKind::kDelta;
  if (h.parent_generation == 0 || h.parent_generation >= h.generation) {
    return BadKind(fmt::format("delta of generation {} names parent generation {}", h.generation,
                               h.parent_generation));
  }
  const uint64_t blocks = (h.region_bytes + h.block_bytes - 1) / h.block_bytes;
  if (h.entry_count > blocks) {
    return BadKind(
        fmt::format("delta has {} entries, the region only {} blocks", h.entry_count, blocks));
  }
  if (h.stored_bytes > h.entry_count * uint64_t{h.block_bytes}) {
    return BadKind(fmt::format("delta stores {} bytes in {} entries of at most {}", h.stored_bytes,
                               h.entry_count, h.block_bytes));
  }
  return Ok();
}

}  // namespace

uint64_t DeltaIndexBytes(uint64_t entry_count) {
  return (entry_count * 8 + kSnapshotHeaderBytes - 1) / kSnapshotHeaderBytes * kSnapshotHeaderBytes;
}

uint64_t SnapshotDataBytes(const SnapshotHeader& h) {
  if (h.kind == SnapshotKind::kFull) return h.region_bytes;
  return DeltaIndexBytes(h.entry_count) + h.stored_bytes;
}

HeaderBytes EncodeSnapshotHeader(const SnapshotHeader& h) {
  HeaderBytes out{};
  Put<uint64_t>(out, kMagicAt, kSnapshotMagic);
  Put<uint32_t>(out, kVersionAt, kSnapshotFormatVersion);
  Put<uint32_t>(out, kHeaderBytesAt, kSnapshotHeaderBytes);
  Put<uint32_t>(out, kBlockBytesAt, h.block_bytes);
  Put<uint32_t>(out, kNameBytesAt, static_cast<uint32_t>(h.name.size()));
  Put<uint64_t>(out, kRegionBytesAt, h.region_bytes);
  Put<uint64_t>(out, kGenerationAt, h.generation);
  Put<uint64_t>(out, kCreatedAt, h.created_unix_ns);
  Put<uint64_t>(out, kDataOffsetAt, kSnapshotHeaderBytes);
  Put<uint64_t>(out, kDataChecksumAt, h.data_checksum);
  Put<uint64_t>(out, kStoredBytesAt, h.stored_bytes);
  std::memcpy(out.data() + kNameAt, h.name.data(), std::min(h.name.size(), kNameCapacity - 1));
  Put<uint32_t>(out, kKindAt, static_cast<uint32_t>(h.kind));
  Put<uint64_t>(out, kParentGenerationAt, h.parent_generation);
  Put<uint64_t>(out, kParentChecksumAt, h.parent_data_checksum);
  Put<uint64_t>(out, kEntryCountAt, h.entry_count);
  Put<uint64_t>(out, kSnapshotHeaderChecksumOffset,
                Xxh3(std::span(out).first(kSnapshotHeaderChecksumOffset)));
  return out;
}

Result<SnapshotHeader> DecodeSnapshotHeader(std::span<const std::byte> in) {
  if (in.size() < kSnapshotHeaderBytes) {
    return Corrupt(fmt::format("file is {} bytes, shorter than the {}-byte header", in.size(),
                               kSnapshotHeaderBytes));
  }
  if (const auto magic = Get<uint64_t>(in, kMagicAt); magic != kSnapshotMagic)
    return Corrupt(fmt::format("bad magic {:#018x}: not a modelswap snapshot", magic));
  if (const auto v = Get<uint32_t>(in, kVersionAt); v != kSnapshotFormatVersion) {
    return Fail(Code::kFailedPrecondition,
                fmt::format("snapshot: format version {}, this build reads version {}", v,
                            kSnapshotFormatVersion));
  }
  if (const auto hb = Get<uint32_t>(in, kHeaderBytesAt); hb != kSnapshotHeaderBytes)
    return Corrupt(fmt::format("header_bytes {}, expected {}", hb, kSnapshotHeaderBytes));
  const auto stored = Get<uint64_t>(in, kSnapshotHeaderChecksumOffset);
  if (const uint64_t actual = Xxh3(in.first(kSnapshotHeaderChecksumOffset)); actual != stored) {
    return Corrupt(fmt::format("header checksum mismatch: stored {}, computed {}",
                               FormatChecksum(stored), FormatChecksum(actual)));
  }
  SnapshotHeader h;
  const auto name_bytes = Get<uint32_t>(in, kNameBytesAt);
  if (name_bytes == 0 || name_bytes >= kNameCapacity)
    return Corrupt(fmt::format("name length {} is not in [1, {}]", name_bytes, kNameCapacity - 1));
  h.name.assign(reinterpret_cast<const char*>(in.data() + kNameAt), name_bytes);
  if (Status s = ValidateRegionName(h.name); !s) return Corrupt("header: " + s.error().message());
  h.block_bytes = Get<uint32_t>(in, kBlockBytesAt);
  h.region_bytes = Get<uint64_t>(in, kRegionBytesAt);
  if (Status s = ValidateRegionOptions({h.region_bytes, h.block_bytes}); !s)
    return Corrupt("header: " + s.error().message());
  h.generation = Get<uint64_t>(in, kGenerationAt);
  if (h.generation == 0) return Corrupt("generation 0 (no commit) is never snapshotted");
  if (const auto off = Get<uint64_t>(in, kDataOffsetAt); off != kSnapshotHeaderBytes)
    return Corrupt(fmt::format("data_offset {}, expected {}", off, kSnapshotHeaderBytes));
  h.created_unix_ns = Get<uint64_t>(in, kCreatedAt);
  h.data_checksum = Get<uint64_t>(in, kDataChecksumAt);
  h.stored_bytes = Get<uint64_t>(in, kStoredBytesAt);
  MS_RETURN_IF_ERROR(DecodeKind(in, h));
  return h;
}

Result<SnapshotHeader> CheckSnapshotHeader(std::span<const std::byte> bytes,
                                           std::string_view expected_name,
                                           uint64_t expected_generation, uint64_t file_size) {
  MS_ASSIGN_OR_RETURN(SnapshotHeader h, DecodeSnapshotHeader(bytes));
  if (h.name != expected_name) {
    return Corrupt(fmt::format("header names region \"{}\", file is in the directory of \"{}\"",
                               h.name, expected_name));
  }
  if (h.generation != expected_generation) {
    return Corrupt(fmt::format("header holds generation {}, file name says {}", h.generation,
                               expected_generation));
  }
  if (const uint64_t want = kSnapshotHeaderBytes + SnapshotDataBytes(h); file_size != want) {
    return Corrupt(
        fmt::format("file is {} bytes, header needs {} (truncated or extended)", file_size, want));
  }
  return h;
}

std::string SnapshotFileName(uint64_t generation) {
  return fmt::format("{:020}.snap", generation);
}

std::optional<uint64_t> ParseSnapshotFileName(std::string_view name) {
  constexpr std::string_view kSuffix = ".snap";
  if (name.size() != 20 + kSuffix.size() || !name.ends_with(kSuffix)) return std::nullopt;
  uint64_t gen = 0;
  const char* end = name.data() + 20;
  auto [ptr, ec] = std::from_chars(name.data(), end, gen);
  if (ec != std::errc() || ptr != end || gen == 0) return std::nullopt;
  return gen;
}

std::string RegionSnapshotDir(std::string_view snapshot_dir, std::string_view region) {
  return fmt::format("{}/{}", snapshot_dir, region);
}

}  // namespace modelswap::snapshot
