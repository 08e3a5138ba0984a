// Loading one published version: (stage), map read-only, check it is the file the manifest
// names, prefault, verify every checksum. Only a version that passed all of it is offered to
// apps; any failure is an Error naming the step, and the caller keeps its old version.
//
// Thread safety: LoadVersion is a plain function. A LoadedVersion is immutable after loading
// except its bookkeeping fields, which its owning ModelAgent touches under its own mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/volume/manifest.h"

namespace modelswap::agent {

struct LoadOptions {
  std::string stage_dir;  // empty: map from the model volume
  int stage_threads = 4;
  int prefault_threads = 2;
};

struct LoadTimings {
  double stage_seconds = 0, map_seconds = 0, prefault_seconds = 0, verify_seconds = 0;
};

struct LoadedVersion {
  Manifest manifest;
  std::string source_path;  // on the model volume
  std::string mapped_path;  // what is mapped: source_path or the staged copy
  std::unique_ptr<MappedFile> mapping;
  uint64_t checksum = 0;  // header_checksum, the .msf identity
  uint64_t entry_count = 0;
  LoadTimings timings;
  std::string prefault_method;
  // Bookkeeping (ModelAgent): monotonic time it stopped being active; 0 while active.
  int64_t retired_at_ns = 0;
};

[[nodiscard]] Result<std::shared_ptr<LoadedVersion>> LoadVersion(Env* env, const std::string& root,
                                                                 const Manifest& manifest,
                                                                 const LoadOptions& options);

}  // namespace modelswap::agent
