// Loading one published version: (stage), map read-only, check it is the file the manifest
// names, prefault, verify every checksum. A chunked version (a manifest with a recipe) is first
// assembled in the node cache (chunked_source.h) and its assembled file mapped through the
// cache's Hold, which the LoadedVersion keeps until the version is dropped so eviction leaves the
// file alone; staging does not apply to it (the cache is local already). Only a version that passed
// all of it is offered to apps; any failure is an Error naming the step, and the caller keeps its
// old version. Every file is opened beneath the volume root (or the stage dir): no symlink on the
// volume is followed. VolumeWorker keeps such I/O off the model loop.
//
// Thread safety: LoadVersion is a plain function. A LoadedVersion is immutable after loading
// except its bookkeeping fields, which its owning ModelAgent touches under its own mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/cache/assembler.h"
#include "sidecar/cache/cache_options.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/manifest.h"

namespace modelswap::agent {

struct LoadOptions {
  std::string stage_dir;  // empty: map from the model volume
  int stage_threads = 4;
  int prefault_threads = 2;
  // The cache chunked versions are assembled in (dir empty: a chunked version is rejected).
  // evict_after_assemble is the caller's choice: the agent evicts on its own thread instead.
  cache::CacheOptions cache;
};

struct LoadTimings {
  double stage_seconds = 0, assemble_seconds = 0, map_seconds = 0, prefault_seconds = 0,
         verify_seconds = 0;
};

// One loaded layer: a whole version, or one layer of a chain (a delta version and the layers
// below it, sidecar/msf/chain.h). A delta version's LoadedVersion is its newest layer; `lower`
// holds the others, each a LoadedVersion of its own that other versions loaded later share (by
// version and checksum) instead of mapping and verifying it again.
struct LoadedVersion {
  // A lower layer's manifest is built from its entry in the version's chain field (generation 0,
  // no published_at).
  Manifest manifest;
  std::string source_path;  // on the model volume
  std::string mapped_path;  // what is mapped: source_path, the staged copy or the cache's file
  bool staged = false;      // mapped_path is this agent's own copy (deleted when dropped)
  bool chunked = false;     // assembled from a recipe in the cache (layout "chunked")
  cache::AssembleStats assemble;  // chunked: how the cache produced the file
  // Chunked: keeps eviction away from the assembled file. Declared before the mapping so the
  // mapping goes first; DropVersion releases it explicitly.
  cache::Hold hold;
  std::unique_ptr<MappedFile> mapping;
  uint64_t checksum = 0;  // header_checksum, the .msf identity
  uint64_t entry_count = 0;
  msf::Header header;
  // Over `mapping` (header checked): the chain checks read its header, never the mapping.
  std::optional<msf::Reader> reader;
  LoadTimings timings;
  std::string prefault_method;
  // A delta version: the layers below this one, newest first, the full base last. Shared with
  // the other loaded versions that use them; a layer is dropped when no retained version does.
  std::vector<std::shared_ptr<LoadedVersion>> lower;
  // What loading this version did: layers mapped and verified (itself included), layers taken
  // from versions already loaded.
  uint32_t layers_loaded = 0, layers_shared = 0;
  // Bookkeeping (ModelAgent): monotonic time it stopped being active; 0 while active.
  int64_t retired_at_ns = 0;
  // Bookkeeping (ModelAgent): its file shrank under the mapping; never shared again.
  bool truncated = false;

  // The chain's length: 1 for a whole version.
  size_t layer_count() const { return lower.size() + 1; }
};

// Every layer of v, newest first: v itself, then v.lower.
std::vector<std::shared_ptr<LoadedVersion>> LayersOf(const std::shared_ptr<LoadedVersion>& v);

// One layer: (stage or assemble), map, identity against `m`, prefault, full verification.
[[nodiscard]] Result<std::shared_ptr<LoadedVersion>> LoadLayer(
    Env* env, const std::string& root, const Manifest& manifest, const LoadOptions& options,
    const std::function<void(std::string)>& step);

// Loads the manifest's version (LoadLayer) and, for a delta, every layer its chain field names
// (chain_loader.cc): a layer found in `loaded` (layers of versions this agent holds, none of them
// truncated) with the same model, version, checksum and size is shared, any other is loaded with
// LoadLayer. The chain is then checked with msf::ValidateChain (links, depths, one model) and
// against the manifest. Errors name the layer ("base layer v7 (xxh3:..) of v8: ..."). `step`
// (may be empty) is told the phase the load is in, for /v1/status.
[[nodiscard]] Result<std::shared_ptr<LoadedVersion>> LoadVersion(
    Env* env, const std::string& root, const Manifest& manifest, const LoadOptions& options,
    const std::function<void(std::string)>& step = {},
    const std::vector<std::shared_ptr<LoadedVersion>>& loaded = {});

// Runs a model's volume I/O (reading the manifest, checking the active file, loading) one job at
// a time on a thread of its own. A read on the volume can block for ever - a FIFO where a file
// should be, a hung blobfuse mount - and a blocked read must cost only this thread: the model
// loop keeps its heartbeat, answers /v1/status, reports how long the job has been stuck and in
// which step (Running()), and still stops on SIGTERM. Jobs own everything they touch (captured
// by value or shared_ptr): a job still blocked when the worker is destroyed is left to finish on
// a detached thread, which then touches nothing of its former owner.
//
// Thread safety: Start from the owning loop thread; busy() and running() from any thread.
class VolumeWorker {
 public:
  // on_done runs on the worker thread after each job (the loop uses it to wake up).
  explicit VolumeWorker(std::function<void()> on_done);
  ~VolumeWorker();
  VolumeWorker(const VolumeWorker&) = delete;
  VolumeWorker& operator=(const VolumeWorker&) = delete;

  // Starts `job` in step `step`; false (and nothing started) while another job runs. The job
  // names each later step through the function it is given (safe even after the worker is gone).
  using SetStepFn = std::function<void(std::string)>;
  bool Start(std::string step, std::function<void(const SetStepFn&)> job);
  bool busy() const;
  struct Running {
    std::string step;
    int64_t started_ns = 0;  // Env monotonic clock, from the caller of Start
  };
  // The running job's step and start time; nullopt when idle.
  std::optional<Running> running() const;
  // The clock Start stamps jobs with.
  void set_clock(std::function<int64_t()> now) { now_ = std::move(now); }

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::function<int64_t()> now_;
};

}  // namespace modelswap::agent
