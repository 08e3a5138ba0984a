// The writer's building steps shared by writer.cc and delta_write.cc (not an API: the writer's
// own pieces, in one namespace so the files can share them).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/msf/builder.h"
#include "sidecar/writer/writer.h"

namespace modelswap::writer_steps {

// What a build learnt on the way, for error messages and the result.
struct BuildNotes {
  std::vector<uint64_t> line_of_entry;  // TSV: the line of each entry (describe_entry)
  uint64_t tombstones = 0;              // tombstones written
  bool compacted = false;               // a full version folded from a chain
};

// The request's entries from its source into fd (an empty file): a full version, or with delta
// set a delta on it (only then may a TSV source delete keys).
[[nodiscard]] Result<msf::BuildResult> BuildInto(Env* env, const WriteRequest& req, int fd,
                                                 const msf::DeltaBase* delta, BuildNotes* notes);

// Reserves about `estimate` bytes of fd where the filesystem can (blobfuse cannot: skipped).
[[nodiscard]] Status Reserve(Env* env, int fd, uint64_t estimate);

// Node-local scratch: the request's scratch_dir, else $TMPDIR, else /tmp; a unique file there.
std::string ScratchDir(const WriteRequest& req);
std::string ScratchPath(Env* env, const WriteRequest& req, std::string_view what);

}  // namespace modelswap::writer_steps
