// Helpers shared by the .msf reader's files (reader.cc: header and lookups; verify.cc: full
// verification). Not part of the msf API.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "common/status.h"
#include "sidecar/msf/cursor.h"
#include "sidecar/msf/reader.h"

namespace modelswap::msf::internal {

inline std::unexpected<Error> Corrupt(std::string what) {
  return Fail(Code::kCorruption, "msf: " + std::move(what));
}

inline bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

// The header's section of `kind`; ParseHeader guarantees exactly one DATA and one INDEX.
inline const SectionInfo& FindSection(const Header& h, uint32_t kind) {
  return *std::find_if(h.sections.begin(), h.sections.end(),
                       [kind](const SectionInfo& s) { return s.kind == kind; });
}

// One DATA entry as decoded by NextEntry.
struct RawEntry {
  std::span<const std::byte> key;
  std::span<const std::byte> value;  // empty for a tombstone
  bool tombstone = false;
};

// Decodes the entry at the cursor (a tombstone has no value bytes) and advances past it; false,
// with the cursor where it was, if the entry does not fit.
inline bool NextEntry(Cursor& c, RawEntry* e) {
  Cursor saved = c;
  uint32_t key_len = 0, value_len = 0;
  if (!c.GetU32(&key_len) || !c.GetU32(&value_len) || !c.GetBytes(key_len, &e->key)) {
    c = saved;
    return false;
  }
  e->tombstone = value_len == kTombstoneLength;
  e->value = {};
  if (!e->tombstone && !c.GetBytes(value_len, &e->value)) {
    c = saved;
    return false;
  }
  return true;
}

}  // namespace modelswap::msf::internal
