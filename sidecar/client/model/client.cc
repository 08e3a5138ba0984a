// ModelClient: attach, acquire (fast path on the record's seq), map versions, heartbeat thread.
#include "sidecar/client/model/client.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/client/model/control_block_access.h"
#include "sidecar/client/model/mapping_guard.h"
#include "sidecar/client/model/reader_slot.h"
#include "sidecar/msf/chain.h"
#include "sidecar/msf/layer_filter.h"
#include "sidecar/volume/version_file.h"

namespace modelswap::client {

// One mapped layer of a version: its file, read through a mapping the SIGBUS guard covers, and
// for a delta the Bloom filter of its keys (msf/layer_filter.h) lookups skip it with. The filter
// is plain memory (built from the mapping while the guard watched): lookups read it unguarded.
struct Layer {
  OpenedModelFile file;
  GuardedRange guard;  // declared after file: unregistered before the mapping goes
  std::string path;
  msf::LayerFilter filter;  // pass-all for the full base (it holds most keys: a filter would not
                            // reject enough to pay for its check)
};

// One mapped version: a chain of layers, newest first (one layer for a whole version). Immutable
// once built; destroyed (unmapped) with its last Handle.
class Version {
 public:
  Version(std::vector<Layer> layers, const ctl::Record& rec)
      : layers_(std::move(layers)),
        generation_(rec.generation),
        version_(rec.version),
        path_(rec.path) {
    for (const Layer& l : layers_) {
      readers_.push_back(&l.file.reader);
      filters_.push_back(l.filter.active() ? &l.filter : nullptr);
    }
  }
  // The layers' readers, newest first: what msf::ChainFind reads.
  std::span<const msf::Reader* const> readers() const { return readers_; }
  // Parallel to readers(): each layer's filter, nullptr where it has none.
  std::span<const msf::LayerFilter* const> filters() const { return filters_; }
  const msf::Reader& top() const { return *readers_.front(); }
  size_t layer_count() const { return layers_.size(); }
  // Whether a SIGBUS hit any layer's mapping (each guard is ordered after the loads before it).
  bool damaged() const {
    return std::any_of(layers_.begin(), layers_.end(),
                       [](const Layer& l) { return l.guard.damaged(); });
  }
  uint64_t generation() const { return generation_; }
  const std::string& version() const { return version_; }
  const std::string& path() const { return path_; }

  Error Damage() const {
    const Layer* hit = &layers_.front();
    for (const Layer& l : layers_) {
      if (l.guard.damaged()) {
        hit = &l;
        break;
      }
    }
    char addr[32];
    std::snprintf(addr, sizeof addr, "%#" PRIxPTR, hit->guard.fault_address());
    std::string where = hit->path == path_ ? path_ : path_ + ", layer " + hit->path;
    return Error(Code::kAborted, "version " + version_ + " (generation " +
                                     std::to_string(generation_) + ", " + where +
                                     ") is damaged: SIGBUS reading its mapping at " + addr +
                                     " (file truncated or unreadable); acquire a new handle");
  }

 private:
  std::vector<Layer> layers_;
  std::vector<const msf::Reader*> readers_;       // into layers_ (a vector never moved after this)
  std::vector<const msf::LayerFilter*> filters_;  // into layers_, likewise
  uint64_t generation_;
  std::string version_, path_;
};

namespace {

// Reads one byte of every page of the value, so the damage check after it covers the value too:
// a lookup that returns a value returns one whose every page was intact when it returned.
void TouchPages(std::span<const std::byte> v) {
  if (v.empty()) return;
  const volatile std::byte* p = v.data();
  for (size_t off = 0; off < v.size(); off += 4096)
    (void)p[off];
  (void)p[v.size() - 1];
}

// Newest layer first, stopping at a value or a tombstone, skipping the deltas whose filter says
// no (msf::ChainFind); a whole version is a chain of one.
template <class K>
auto LookupIn(const Version& v, K key) -> Result<decltype(msf::ChainFind(v.readers(), key))> {
  auto found = msf::ChainFind(v.readers(), v.filters(), key);
  if (found) TouchPages(std::as_bytes(std::span(found->data(), found->size())));
  if (v.damaged()) return Fail(v.Damage());
  return found;
}

}  // namespace

Result<std::optional<std::string_view>> Handle::Lookup(std::string_view key) const {
  return LookupIn(*v_, key);
}
Result<std::optional<std::span<const std::byte>>> Handle::Lookup(
    std::span<const std::byte> key) const {
  return LookupIn(*v_, key);
}
std::optional<std::string_view> Handle::Get(std::string_view key) const {
  return Lookup(key).value_or(std::nullopt);
}
std::optional<std::span<const std::byte>> Handle::Get(std::span<const std::byte> key) const {
  return Lookup(key).value_or(std::nullopt);
}
bool Handle::damaged() const {
  return v_->damaged();
}
Status Handle::Check() const {
  if (v_->damaged()) return Fail(v_->Damage());
  return Ok();
}
uint64_t Handle::generation() const {
  return v_->generation();
}
const std::string& Handle::version() const {
  return v_->version();
}
const std::string& Handle::path() const {
  return v_->path();
}
uint64_t Handle::entry_count() const {
  return v_->top().size();
}
size_t Handle::layer_count() const {
  return v_->layer_count();
}

std::string ShmDir(const std::string& configured) {
  return ResolveShmDir(configured);
}

class ModelClient::Impl {
 public:
  Impl(std::string model, std::string path, Env* env)
      : model_(std::move(model)), path_(std::move(path)), env_(env) {}
  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Status AttachLocked() {
    auto file = ctl::ControlBlockFile::Open(path_);
    if (!file) {
      if (file.error().code() == Code::kNotFound) {
        return Fail(Code::kUnavailable,
                    "control block " + path_ + " does not exist (is the modelswap agent running?)");
      }
      return Fail(file.error());
    }
    if (ctl::ModelName((*file)->header()) != model_) {
      return Fail(Code::kCorruption, "control block " + path_ + " names model \"" +
                                         ctl::ModelName((*file)->header()) + "\"");
    }
    // Claim in the new file first, so a failure leaves the old attachment intact.
    MS_ASSIGN_OR_RETURN(ctl::ReaderSlot slot, ctl::ReaderSlot::Claim(**file));
    slot_.reset();  // the old slot goes before its file
    file_ = std::move(*file);
    slot_.emplace(std::move(slot));
    seen_seq_ = 1;  // odd: never equal to a stable seq, so the next Acquire reads the record
    AnnounceLocked();
    return Ok();
  }

  void StartThread() {
    thread_ = std::thread([this] { HeartbeatLoop(); });
  }

  Result<Handle> Acquire() {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) HeartbeatLocked();
    // Fast path: the record has not been written since we read it, and we still hold its
    // version.
    if (current_ && !current_->damaged() && ctl::RecordSeq(file_->header()) == seen_seq_) {
      return Handle(current_);
    }
    return AcquireSlowLocked();
  }

  void Heartbeat() {
    std::lock_guard lock(mu_);
    HeartbeatLocked();
  }

  const std::string& model() const { return model_; }
  uint32_t slot() {
    std::lock_guard lock(mu_);
    return slot_ ? slot_->index() : UINT32_MAX;
  }
  uint64_t reattach_count() {
    std::lock_guard lock(mu_);
    return reattaches_;
  }

 private:
  Result<Handle> AcquireSlowLocked() {
    for (int attempt = 0; attempt < 8; ++attempt) {
      MS_ASSIGN_OR_RETURN(ctl::Record rec, ctl::ReadRecord(file_->header()));
      if (rec.state == MS_CTL_STATE_NONE) {
        return Fail(Code::kUnavailable, "model " + model_ + ": no active version yet");
      }
      if (rec.state != MS_CTL_STATE_ACTIVE) {
        return Fail(Code::kUnavailable, "model " + model_ + ": the agent dropped version " +
                                            rec.version + " (see its /v1/status)");
      }
      if (current_ && current_->generation() == rec.generation && current_->path() == rec.path) {
        // Damaged under us before the agent noticed: it will publish FAILED, then a fallback.
        if (current_->damaged()) return Fail(Code::kUnavailable, current_->Damage().message());
        seen_seq_ = rec.seq;
        return Handle(current_);
      }
      // Announce before mapping, then check the record did not move on meanwhile (Dekker with
      // the agent, control_block.h): if it did, start again with the newer version.
      uint64_t min = MinHeldLocked(rec.generation);
      slot_->Announce(min, std::max(rec.generation, current_ ? current_->generation() : 0));
      if (ctl::RecordSeq(file_->header()) != rec.seq) continue;
      auto opened = OpenVersion(rec);
      if (!opened) {
        // Removed or replaced since the record named it: a newer record will say so.
        if (opened.error().code() == Code::kNotFound &&
            ctl::RecordSeq(file_->header()) != rec.seq) {
          continue;
        }
        AnnounceLocked();
        return Fail(opened.error());
      }
      if (current_) retired_.push_back(current_);
      current_ = std::move(*opened);
      seen_seq_ = rec.seq;
      AnnounceLocked();
      return Handle(current_);
    }
    return Fail(Code::kUnavailable, "model " + model_ + ": the active version kept changing");
  }

  // Maps one layer. The agent verified every checksum; the header check (O(1)) and the identity
  // below make sure this is the very file it verified. The range is guarded before the first
  // read: the header can fault too if the file is being truncated. `bytes` 0: not checked (the
  // record holds only the newest layer's size; a lower layer's checksum covers its header).
  Result<Layer> OpenLayer(const std::string& path, uint64_t checksum, uint64_t bytes) {
    MS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapping, env_->MapReadOnly(path));
    MS_ASSIGN_OR_RETURN(GuardedRange guard, GuardedRange::Register(mapping->bytes()));
    auto reader = msf::Reader::Open(mapping->bytes(), msf::VerifyLevel::kHeader);
    if (guard.damaged()) {
      return Fail(Code::kUnavailable, path + ": SIGBUS reading its header (file truncated " +
                                          "or unreadable); the agent will replace it");
    }
    if (!reader) return Fail(reader.error().Context(path));
    const msf::Header& h = reader->header();
    if (h.header_checksum != checksum || (bytes != 0 && h.file_size != bytes)) {
      return Fail(Code::kCorruption, path + ": is not the file the agent verified (" +
                                         FormatChecksum(h.header_checksum) + " vs " +
                                         FormatChecksum(checksum) + ")");
    }
    // A delta's filter hashes every key of its DATA: reads of the mapping like any lookup's, so
    // a SIGBUS meanwhile (zero pages read instead) fails the open like one on the header. The
    // agent verified the file fully (kFull), which is what keeps the filter free of false
    // negatives (layer_filter.h).
    msf::LayerFilter filter;
    if (reader->is_delta()) {
      filter = msf::LayerFilter::Build(*reader);
      if (guard.damaged()) {
        return Fail(Code::kUnavailable, path + ": SIGBUS reading its entries (file truncated " +
                                            "or unreadable); the agent will replace it");
      }
    }
    return Layer{OpenedModelFile{std::move(mapping), std::move(*reader)}, std::move(guard), path,
                 std::move(filter)};
  }

  // Maps every layer the record names, newest first, and checks they form one chain (the agent
  // did; this catches a record and files that disagree, and a delta named alone).
  Result<std::shared_ptr<const Version>> OpenVersion(const ctl::Record& rec) {
    std::vector<Layer> layers;
    layers.reserve(rec.layer_count());
    MS_ASSIGN_OR_RETURN(Layer top, OpenLayer(rec.path, rec.checksum, rec.bytes));
    layers.push_back(std::move(top));
    for (const ctl::LowerLayer& l : rec.lower) {
      MS_ASSIGN_OR_RETURN(Layer layer, OpenLayer(l.path, l.checksum, 0));
      layers.push_back(std::move(layer));
    }
    auto v = std::make_shared<const Version>(std::move(layers), rec);
    if (auto st = msf::ValidateChain(v->readers()); !st) {
      return Fail(st.error().Context("version " + rec.version + " (" + rec.path + ")"));
    }
    return v;
  }

  // The oldest generation any live handle (or `candidate`) still reads.
  uint64_t MinHeldLocked(uint64_t candidate) {
    uint64_t min = candidate;
    if (current_) min = std::min(min, current_->generation());
    for (const auto& w : retired_) {
      if (auto v = w.lock()) min = std::min(min, v->generation());
    }
    return min;
  }

  void AnnounceLocked() {
    std::erase_if(retired_, [](const std::weak_ptr<const Version>& w) { return w.expired(); });
    if (!current_ && retired_.empty()) {
      slot_->Announce(0, 0);
      return;
    }
    uint64_t max = current_ ? current_->generation() : 0;
    for (const auto& w : retired_) {
      if (auto v = w.lock()) max = std::max(max, v->generation());
    }
    slot_->Announce(MinHeldLocked(max), max);
  }

  void HeartbeatLocked() {
    if (!file_->StillLinked()) {
      // The agent replaced the control block (it found it invalid on restart): move over.
      if (AttachLocked()) ++reattaches_;
    }
    // A superseded version nobody holds a handle on is dropped now, so an idle app does not pin
    // it; the next Acquire maps the newest one.
    if (current_ && current_.use_count() == 1 && ctl::RecordSeq(file_->header()) != seen_seq_) {
      current_.reset();
    }
    AnnounceLocked();
    slot_->Beat();
  }

  void HeartbeatLoop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      HeartbeatLocked();
      uint64_t interval = ctl::Word(file_->header().heartbeat_interval_ns)
                              .load(std::memory_order_relaxed);  // a setting: any value works
      interval = std::clamp<uint64_t>(interval / 2, 1'000'000, 5'000'000'000);
      cv_.wait_for(lock, std::chrono::nanoseconds(interval), [this] { return stop_; });
    }
  }

  const std::string model_, path_;
  Env* const env_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
  std::unique_ptr<ctl::ControlBlockFile> file_;  // declared before slot_: outlives it
  std::optional<ctl::ReaderSlot> slot_;
  uint64_t seen_seq_ = 1;
  std::shared_ptr<const Version> current_;
  std::vector<std::weak_ptr<const Version>> retired_;
  uint64_t reattaches_ = 0;
};

Result<std::unique_ptr<ModelClient>> ModelClient::Attach(std::string_view model, Options options) {
  MS_RETURN_IF_ERROR(ValidateModelName(model));
  std::string path = ctl::ControlBlockPath(ShmDir(options.shm_dir), model);
  auto impl = std::make_unique<Impl>(std::string(model), path,
                                     options.env != nullptr ? options.env : DefaultEnv());
  MS_RETURN_IF_ERROR(impl->AttachLocked());  // not shared yet: no lock needed
  if (options.heartbeat_thread) impl->StartThread();
  return std::unique_ptr<ModelClient>(new ModelClient(std::move(impl)));
}

ModelClient::ModelClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelClient::~ModelClient() = default;
Result<Handle> ModelClient::Acquire() {
  return impl_->Acquire();
}
void ModelClient::Heartbeat() {
  impl_->Heartbeat();
}
const std::string& ModelClient::model() const {
  return impl_->model();
}
uint32_t ModelClient::slot() const {
  return impl_->slot();
}
uint64_t ModelClient::reattach_count() const {
  return impl_->reattach_count();
}

}  // namespace modelswap::client
