// Parsing key<TAB>value lines (`write --from-tsv`).
//
// One entry a line; the first TAB separates key from value (later TABs belong to the value).
// A trailing CR is dropped (files from Windows). Backslash escapes follow PostgreSQL's COPY text
// format so that any byte can appear in keys and values: \\ \t \n \r and \xHH. Empty lines are
// skipped. Errors name the line: "line 17: no TAB between key and value".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelswap {

// Parses one line (without its '\n'). Returns false in *has_entry for a blank line.
[[nodiscard]] Status ParseTsvLine(std::string_view line, uint64_t line_number, std::string* key,
                                  std::string* value, bool* has_entry);

}  // namespace modelswap
