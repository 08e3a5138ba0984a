// Staging: copying a version file from the (slow, network) model volume to a node-local
// directory before mapping it (`agent --stage-dir`).
//
// Blob-backed volumes serve one sequential reader slowly but many parallel range reads well, so
// the copy reads fixed-size chunks with several threads (pread/pwrite at the same offsets) into
// "<stage>/<model>/.tmp-<version>.msf-<pid>", then renames it to "<stage>/<model>/<version>.msf".
// A staged copy that already exists with the expected size is reused (an agent restart); the
// loader verifies every checksum of whatever it maps anyway.
//
// Thread safety: a plain function; concurrent calls for different models are fine.
#pragma once

#include <cstdint>
#include <string>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::agent {

struct StageRequest {
  std::string root;        // the model volume: the source is opened beneath it
  std::string source_rel;  // the version file, relative to root
  std::string stage_dir;   // --stage-dir
  std::string model, version;
  uint64_t expected_bytes = 0;  // from the manifest
  int threads = 4;
  uint64_t chunk_bytes = 8ull << 20;
};

// Returns the staged path. kCorruption if the source is shorter or longer than expected.
[[nodiscard]] Result<std::string> StageFile(Env* env, const StageRequest& req);

std::string StagedPath(const std::string& stage_dir, const std::string& model,
                       const std::string& version);

}  // namespace modelswap::agent
