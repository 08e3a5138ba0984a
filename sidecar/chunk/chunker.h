// Content-defined chunking: FastCDC (Xia et al., "FastCDC: a Fast and Efficient Content-Defined
// Chunking Approach for Data Deduplication", USENIX ATC 2016; extended in IEEE TPDS 2020), plus
// the zero-run rule that turns long runs of zero bytes into holes that are never stored.
//
// FastCDC rolls a Gear hash (fp = (fp << 1) + kGear[byte]) over the input, so the hash at a
// position depends only on the 64 bytes before it: an insertion moves the cut points near it and
// no others, and the versions of a model share every chunk the edit did not touch. The three
// FastCDC techniques are all used:
//   - cut-point skipping: no hash is computed over the first min_bytes of a chunk;
//   - normalized chunking (level 2): before avg_bytes the cut test uses a mask with 2 more bits
//     than log2(avg_bytes) (harder to cut), after it a mask with 2 fewer (easier), which narrows
//     the chunk size distribution around avg_bytes;
//   - the mask bits are spread over the hash's upper 48 bits, so every cut test looks at a window
//     of about 48 bytes rather than the last few.
// The Gear table is fixed in the source (chunker.cc, from splitmix64 with a fixed seed, pinned by
// a test): the same bytes give the same chunks on every machine, for ever. Changing it (or the
// masks) changes every cut point, so old and new versions would share no chunks; it never makes a
// recipe wrong, because a recipe records each chunk's offset and length.
//
// Zero runs (NextChunk): a run of at least min_bytes zero bytes is a hole chunk (length up to
// max_bytes; a longer run is several holes, the last never shorter than min_bytes) that is never
// hashed nor stored; a data chunk that would contain the start of such a run is cut where the run
// begins, so it may be shorter than min_bytes. .msf padding and preallocated tails are such runs.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"

namespace modelswap::chunk {

struct ChunkerParams {
  uint32_t min_bytes = 16 << 10;
  uint32_t avg_bytes = 64 << 10;
  uint32_t max_bytes = 256 << 10;

  bool operator==(const ChunkerParams&) const = default;
};

// The largest max_bytes ValidateParams accepts: a chunk is read into memory whole.
inline constexpr uint32_t kMaxChunkBytes = 16 << 20;

// kInvalidArgument naming the rule broken: 64 <= min_bytes < avg_bytes < max_bytes <=
// kMaxChunkBytes, avg_bytes a power of two (its log2 sets the masks) between 256 and 4 MiB.
[[nodiscard]] Status ValidateParams(const ChunkerParams& params);

// FastCDC: the length of the chunk that starts at data[0]. The caller passes at least max_bytes
// unless data is the rest of the input (then the last chunk may be shorter than min_bytes).
// REQUIRES: ValidateParams(params) ok.
[[nodiscard]] size_t FindCut(std::span<const std::byte> data, const ChunkerParams& params);

struct Cut {
  size_t length = 0;
  bool hole = false;  // all zero bytes; never stored
};

// How many bytes NextChunk needs to see (unless data is the rest of the input).
inline constexpr size_t Lookahead(const ChunkerParams& p) {
  return size_t{p.max_bytes} + p.min_bytes;
}

// The next chunk at data[0] under the zero-run rule above. The caller passes at least
// Lookahead(params) bytes unless data is the rest of the input; data is not empty.
// REQUIRES: ValidateParams(params) ok.
[[nodiscard]] Cut NextChunk(std::span<const std::byte> data, const ChunkerParams& params);

}  // namespace modelswap::chunk
