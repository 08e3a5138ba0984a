// The agent's side of a model's control block (<shm-dir>/<model>.ctl; layout: control_block.h).
//
// On start the agent adopts an existing valid control block - apps keep their mappings and
// slots, and simply see the record rewritten - or, if the file is missing or not a control block
// of this layout, creates a fresh one beside it and renames it into place (apps notice the new
// inode and re-attach). It then holds an exclusive flock on it: a second agent for the same
// shm-dir and model fails to start instead of corrupting the record.
//
// Thread safety: one ModelAgent thread calls Publish/Tick/ReadSlots; the HTTP thread may call
// ReadSlots concurrently (it only reads).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "sidecar/client/model/control_block_access.h"

namespace modelswap::agent {

struct ControlBlockOptions {
  std::string shm_dir;
  std::string model;
  uint64_t heartbeat_interval_ns = 1'000'000'000;
  uint64_t reader_timeout_ns = 5'000'000'000;
};

class ControlBlockWriter {
 public:
  [[nodiscard]] static Result<std::unique_ptr<ControlBlockWriter>> OpenOrCreate(
      Env* env, const ControlBlockOptions& options);

  // Seqlock-writes the record (then a seq_cst fence: see control_block.h).
  void Publish(const ctl::Record& record);
  // The record as it is now (the adopted one right after start).
  Result<ctl::Record> Current();
  // The agent's heartbeat word.
  void Tick();
  // Slots whose heartbeat is within the reader timeout.
  std::vector<ctl::SlotView> LiveSlots();

  bool adopted() const { return adopted_; }
  uint64_t incarnation() const { return incarnation_; }
  const std::string& path() const { return file_->path(); }
  uint64_t reader_timeout_ns() const { return options_.reader_timeout_ns; }

 private:
  ControlBlockWriter(ControlBlockOptions options, std::unique_ptr<ctl::ControlBlockFile> file,
                     bool adopted);
  ControlBlockOptions options_;
  std::unique_ptr<ctl::ControlBlockFile> file_;
  bool adopted_;
  uint64_t incarnation_ = 0;
};

}  // namespace modelswap::agent
