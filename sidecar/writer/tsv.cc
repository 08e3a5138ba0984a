// key<TAB>value lines with COPY-style escapes.
#include "sidecar/writer/tsv.h"

namespace modelswap {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status Unescape(std::string_view in, uint64_t line, const char* field, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    auto bad = [&](std::string what) {
      return Fail(Code::kInvalidArgument, "line " + std::to_string(line) + ": " + field + ": " +
                                              what + " at column " + std::to_string(i + 1));
    };
    if (i + 1 == in.size()) return bad("backslash at end of field");
    char e = in[++i];
    switch (e) {
      case '\\':
        out->push_back('\\');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 'x': {
        int hi = i + 1 < in.size() ? HexDigit(in[i + 1]) : -1;
        int lo = i + 2 < in.size() ? HexDigit(in[i + 2]) : -1;
        if (hi < 0 || lo < 0) return bad("\\x needs two hex digits");
        out->push_back(static_cast<char>(hi << 4 | lo));
        i += 2;
        break;
      }
      case 'N':
        return bad(
            "\\N is only a whole value (key<TAB>\\N deletes the key); a literal \\N is "
            "written \\\\N");
      default:
        return bad(std::string("unknown escape \\") + e);
    }
  }
  return Ok();
}

}  // namespace

Status ParseTsvLine(std::string_view line, uint64_t line_number, std::string* key,
                    std::string* value, TsvLine* kind) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  *kind = TsvLine::kBlank;
  if (line.empty()) return Ok();
  size_t tab = line.find('\t');
  if (tab == std::string_view::npos) {
    return Fail(Code::kInvalidArgument,
                "line " + std::to_string(line_number) + ": no TAB between key and value");
  }
  if (tab == 0) {
    return Fail(Code::kInvalidArgument, "line " + std::to_string(line_number) + ": empty key");
  }
  MS_RETURN_IF_ERROR(Unescape(line.substr(0, tab), line_number, "key", key));
  if (line.substr(tab + 1) == "\\N") {
    value->clear();
    *kind = TsvLine::kTombstone;
    return Ok();
  }
  MS_RETURN_IF_ERROR(Unescape(line.substr(tab + 1), line_number, "value", value));
  *kind = TsvLine::kEntry;
  return Ok();
}

}  // namespace modelswap
