// Parsing key<TAB>value lines (`write --from-tsv`).
//
// One entry a line; the first TAB separates key from value (later TABs belong to the value).
// A trailing CR is dropped (files from Windows). Backslash escapes follow PostgreSQL's COPY text
// format so that any byte can appear in keys and values: \\ \t \n \r and \xHH. Empty lines are
// skipped. Errors name the line: "line 17: no TAB between key and value".
//
// Deleting a key (delta versions, `write --delta-on`): a value that is exactly the escape \N
// (COPY's NULL) makes the line a tombstone: `key<TAB>\N` deletes key. A literal value "\N" is
// written `\\N`. \N anywhere else in a field is an unknown escape, as before, so no file that
// parsed before the convention changes meaning. Whether a tombstone is allowed is the writer's
// call (only in a delta or a compaction's changes), not the parser's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelswap {

enum class TsvLine {
  kBlank,      // nothing to add
  kEntry,      // key and value set
  kTombstone,  // key set, value cleared: `key<TAB>\N`
};

// Parses one line (without its '\n') into *key and *value; *kind says what it was.
[[nodiscard]] Status ParseTsvLine(std::string_view line, uint64_t line_number, std::string* key,
                                  std::string* value, TsvLine* kind);

}  // namespace modelswap
