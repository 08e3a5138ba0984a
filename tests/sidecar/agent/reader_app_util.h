// What the reader apps of the process tests share (reader_helper.cc, sigbus_app.cc): reading a
// flag's value from argv, and writing a progress file the test polls, atomically (a rename), so
// the test never reads half a line.
#pragma once

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace modelswap::testing {

// The value after `name` in argv (a subcommand in argv[1] never equals a flag), else `def`.
inline std::string Arg(int argc, char** argv, const char* name, const char* def = "") {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

// Replaces `path` with one line, `text`.
inline void WriteProgress(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace modelswap::testing
