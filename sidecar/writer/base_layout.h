// Writing a version in the layout of an earlier one (`write --base VERSION`), so that content-
// defined chunks survive from one version to the next.
//
// A plain build lays entries out in the order the source gives them and sizes the index for the
// new entry count: sort the source differently, or grow it past a power of two, and every chunk
// of the file changes although few rows did. On a base, the writer instead
//   - writes the entries the base has, in the base's DATA order: an unchanged entry is the same
//     bytes in the same order, so its chunks come out identical (FastCDC re-synchronises a few
//     bytes after any change, sidecar/chunk/chunker.h);
//   - drops the entries the new content lacks, and appends entries the base lacks at the end;
//   - keeps the base's hash seed and index capacity (unless the new entry count needs more), and
//     inserts keys into the index in that same order, so a shared key lands in the same slot.
// Where it helps and where it cannot (bench/chunk, bench/README.md): rows changed in clustered
// runs, or appended, change a few chunks of DATA; a changed value of another length moves every
// later entry, which FastCDC absorbs in DATA but which changes the offsets stored in the index's
// slots after it (the index is ~1.6 % of a file of 1 KiB rows); rows changed uniformly at random
// touch nearly every chunk whatever the layout (a few changed rows per 64 KiB chunk).
//
// The new content is first built as an ordinary .msf in scratch (it must be looked up by key),
// then re-laid; both files are node-local. Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/msf/builder.h"
#include "sidecar/msf/reader.h"

namespace modelswap {

// A base version opened for reading: a whole .msf on the volume (mapped beneath root), or a
// chunked one put together from its recipe and chunks into a scratch file (every chunk's hash
// checked; a delta chunk read against its base). The file is verified at `level`: kFull unless the
// caller checks the contents itself as it reads them (compaction.h). Removes its scratch file when
// destroyed.
class BaseVersion {
 public:
  static Result<std::unique_ptr<BaseVersion>> Open(
      Env* env, const std::string& root, const std::string& model, const std::string& version,
      const std::string& scratch_dir, msf::VerifyLevel level = msf::VerifyLevel::kFull);
  ~BaseVersion();
  BaseVersion(const BaseVersion&) = delete;
  BaseVersion& operator=(const BaseVersion&) = delete;

  const msf::Reader& reader() const { return reader_; }
  std::span<const std::byte> bytes() const { return mapping_->bytes(); }

 private:
  BaseVersion(Env* env, std::unique_ptr<MappedFile> mapping, msf::Reader reader,
              std::string scratch)
      : env_(env), mapping_(std::move(mapping)), reader_(reader), scratch_(std::move(scratch)) {}
  Env* env_;
  std::unique_ptr<MappedFile> mapping_;
  msf::Reader reader_;
  std::string scratch_;  // "" for a file on the volume
};

// A chunk of the base version that a new chunk may be stored against as a delta chunk (always a
// chunk stored whole).
struct DeltaBase {
  chunk::ChunkHash hash;
  uint32_t length = 0;
};

// Where each chunk of a version laid out on a chunked base finds the base chunk it most likely
// differs from in a few bytes (chunked_upload.h, "Delta chunks"): the base's recipe entry
// covering most of the same bytes of the base file. "The same bytes" follows the layout above:
// the header and DATA keep their offsets (unchanged entries stay in place, new ones are appended
// at DATA's end), but INDEX starts wherever DATA ends, so a version with rows appended or
// inserted has its whole INDEX shifted against the base's, slot for slot when the capacity is
// kept: a new INDEX chunk is matched at the same distance from the base's INDEX start. Matched
// at plain file offsets instead, every INDEX chunk of a version with 0.1 % of keys inserted would
// be compared with an unrelated stretch of slots, and stored whole. A hole has no base; a delta
// entry's base is its own base, so a base is always stored whole.
class DeltaBasePicker {
 public:
  // `base` is the base version's recipe, `file` the new version's complete .msf. Reads the base's
  // header page from the store (through ChunkStore::GetEntry) to find its INDEX; when either
  // header does not parse, every chunk is matched at its own offset (logged).
  static Result<DeltaBasePicker> Create(chunk::ChunkStore* store, chunk::Recipe base,
                                        std::span<const std::byte> file);
  // The base for the new chunk at [offset, offset + length), or none.
  [[nodiscard]] std::optional<DeltaBase> Pick(uint64_t offset, uint32_t length) const;

 private:
  explicit DeltaBasePicker(std::vector<chunk::RecipeChunk> chunks) : chunks_(std::move(chunks)) {}
  std::vector<chunk::RecipeChunk> chunks_;  // the base's entries, in offset order
  uint64_t index_from_ = UINT64_MAX;        // the new file's INDEX offset (none: UINT64_MAX)
  uint64_t base_index_ = 0;                 // the base file's INDEX offset
};

// Writes `fresh`'s entries into fd (an empty file) in base's layout (see above). options gives
// the model, version and creation time; its seed and capacity are taken from base.
[[nodiscard]] Result<msf::BuildResult> RelayOnBase(Env* env, const msf::Reader& base,
                                                   const msf::Reader& fresh, int fd,
                                                   msf::BuildOptions options);

}  // namespace modelswap
