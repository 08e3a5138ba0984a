// The C++ client app containers link: read the active version of a model, swapped under load
// without torn reads.
//
//   auto model = modelswap::client::ModelClient::Attach("ranker");   // <shm-dir>/ranker.ctl
//   auto h = (*model)->Acquire();        // pinned to one version, RCU style
//   auto v = h->Lookup("42");   // optional<string_view> into the mapped file, or an error
//
// Everything read through one Handle comes from one version, however long the handle lives; a
// new Acquire() returns the newest active version. The client maps the version file itself (the
// agent already filled the page cache), and announces in its reader slot of the control block
// which generations it still reads, so the agent knows when an old version can be unmapped and
// its pages dropped. Liveness is a heartbeat: by default a background thread refreshes the slot
// every heartbeat interval the agent asks for (half of it, to be safe), so an app that holds a
// handle and idles keeps it announced; without the thread (Options::heartbeat_thread = false)
// each Acquire() and Heartbeat() call refreshes it.
//
// A version file truncated (or unreadable) under a held handle does not kill the app: the client
// survives the SIGBUS and reports the handle's version as damaged (mapping_guard.h).
//
// A delta version (docs/design.md) is a chain: the client maps every layer the control block
// names (each checked against the checksum the agent verified, each covered by the SIGBUS
// guard), and a lookup reads the newest layer first, stopping at a value or a tombstone
// (msf::ChainFind). A layer's index fingerprints make a miss in it cost about one cache line;
// each delta layer also gets an in-memory Bloom filter (msf/layer_filter.h), built when it is
// mapped, so a key it does not hold usually skips its index altogether.
//
// Layout and protocol: control_block.h. C ABI: modelswap.h. Python: python/modelswap/model.py.
//
// Thread safety: a ModelClient is thread-safe (Acquire takes a short mutex). A Handle may be
// shared between threads (it is immutable); copies are cheap (a shared_ptr). Handles stay valid
// after the ModelClient that made them is destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::client {

struct Options {
  // Directory of the control blocks; empty means $MODELSWAP_SHM_DIR, else /dev/shm/modelswap.
  std::string shm_dir;
  // Refresh the reader slot from a background thread (recommended). Without it the slot is
  // refreshed on Acquire() and Heartbeat() only, and the agent may consider an idle app dead.
  bool heartbeat_thread = true;
  // Where version files are mapped from; nullptr = DefaultEnv().
  Env* env = nullptr;
};

// Resolves Options::shm_dir.
std::string ShmDir(const std::string& configured);

class Version;  // one mapped version (client.cc)

class Handle {
 public:
  Handle() = default;
  bool valid() const { return v_ != nullptr; }

  // The value for key, pointing into the mapped file (valid while this handle or a copy lives);
  // nullopt if the key is absent. kAborted if the version's file was damaged under the mapping
  // (truncated, or a page could not be read): the lookup did not crash, and nothing it read is
  // returned as data; the handle stays damaged, so acquire a new one (the agent falls back to an
  // intact version: kUnavailable until it has). Every page of a returned value was intact when
  // Lookup returned; code that reads the value later and must know it was intact then checks
  // Check() (or damaged()) after reading it, as a seqlock reader re-checks its sequence
  // (mapping_guard.h says why and how). For a delta version the value is the newest layer's that
  // holds the key; a key deleted in a newer layer is absent. REQUIRES: valid().
  [[nodiscard]] Result<std::optional<std::string_view>> Lookup(std::string_view key) const;
  [[nodiscard]] Result<std::optional<std::span<const std::byte>>> Lookup(
      std::span<const std::byte> key) const;
  // Lookup without the reason: a damaged version reads as absent (nullopt), never as data.
  std::optional<std::string_view> Get(std::string_view key) const;
  std::optional<std::span<const std::byte>> Get(std::span<const std::byte> key) const;
  // Whether the version's file was damaged under the mapping; Check() says it as kAborted.
  bool damaged() const;
  [[nodiscard]] Status Check() const;

  uint64_t generation() const;
  const std::string& version() const;
  // The file of the version itself: for a delta version, its newest layer.
  const std::string& path() const;
  // Entries of the newest layer alone (tombstones included): a whole version's entry count; for
  // a delta version, the delta's upserts and deletions, not the chain's live keys.
  uint64_t entry_count() const;
  // Layers read by lookups: 1 for a whole version; for a delta version, its chain (the full base
  // and the deltas up to the version, at most 8).
  size_t layer_count() const;

 private:
  friend class ModelClient;
  explicit Handle(std::shared_ptr<const Version> v) : v_(std::move(v)) {}
  std::shared_ptr<const Version> v_;
};

class ModelClient {
 public:
  // Opens <shm-dir>/<model>.ctl and claims a reader slot. kUnavailable if the control block
  // does not exist yet (the agent has not started: retry), kCorruption/kFailedPrecondition if
  // it is not a control block this library understands, kUnavailable if all slots are taken.
  [[nodiscard]] static Result<std::unique_ptr<ModelClient>> Attach(std::string_view model,
                                                                   Options options = {});
  ~ModelClient();
  ModelClient(const ModelClient&) = delete;
  ModelClient& operator=(const ModelClient&) = delete;

  // A handle on the newest active version. kUnavailable while the agent has published none (or
  // has dropped the one it had), with the reason; errors mapping the file are passed through.
  [[nodiscard]] Result<Handle> Acquire();

  // Refreshes the slot now: heartbeat, the generations still read, re-attach if the agent
  // replaced the control block file. The background thread calls this.
  void Heartbeat();

  const std::string& model() const;
  // The slot this process holds (diagnostics and tests).
  uint32_t slot() const;
  // How many times this client re-attached to a replaced control block.
  uint64_t reattach_count() const;

 private:
  class Impl;
  explicit ModelClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelswap::client
