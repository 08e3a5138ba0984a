// The load pipeline of one layer: stage -> map -> identity checks -> prefault -> full verify
// (chain_loader.cc puts a delta version's layers together); and the worker thread that runs
// volume I/O off the model loop.
#include "sidecar/agent/loader.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/agent/chunked_source.h"
#include "sidecar/agent/prefault.h"
#include "sidecar/agent/sigbus_guard.h"
#include "sidecar/agent/stager.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/version_file.h"

namespace modelswap::agent {
namespace {

double Since(Env* env, int64_t start) {
  return static_cast<double>(env->NowMonotonicNanos() - start) / 1e9;
}

// The header must describe exactly the file the manifest published.
Status CheckIdentity(const msf::Header& h, const Manifest& m, const std::string& path) {
  uint64_t want = 0;
  if (!ParseChecksum(m.checksum, &want)) {
    return Fail(Code::kCorruption, "manifest checksum \"" + m.checksum + "\" is malformed");
  }
  if (h.header_checksum != want) {
    return Fail(Code::kCorruption, path + ": checksum " + FormatChecksum(h.header_checksum) +
                                       " differs from the manifest's " + m.checksum);
  }
  if (h.file_size != m.bytes) {
    return Fail(Code::kCorruption, path + ": " + std::to_string(h.file_size) +
                                       " bytes, manifest says " + std::to_string(m.bytes));
  }
  if (h.model != m.model || h.version != m.version) {
    return Fail(Code::kCorruption, path + ": header names " + h.model + "/" + h.version);
  }
  return Ok();
}

}  // namespace

Result<std::shared_ptr<LoadedVersion>> LoadLayer(Env* env, const std::string& root,
                                                 const Manifest& m, const LoadOptions& opt,
                                                 const std::function<void(std::string)>& step) {
  MS_RETURN_IF_ERROR(ValidateModelName(m.model));
  MS_RETURN_IF_ERROR(ValidateVersionName(m.version));
  auto v = std::make_shared<LoadedVersion>();
  v->manifest = m;
  v->source_path = VersionPath(root, m.model, m.version);
  v->mapped_path = v->source_path;

  int64_t t = env->NowMonotonicNanos();
  Result<std::unique_ptr<MappedFile>> mapping = Fail(Code::kInternal, "not mapped");
  if (!m.recipe.empty()) {
    // The cache verifies an assembled file in full before it gets its name (assembler.h). When
    // this call built it (or re-verified it after a reboot, durability.h), the full check below
    // would repeat the one just made on the inode the hold pins, and costs as much (cache_bench
    // (b)): skipped. A file found already assembled is verified in full again here, as a staged
    // or volume file is: it may have sat on the node's disk for hours.
    MS_ASSIGN_OR_RETURN(cache::Assembled a, AssembleChunked(env, root, m, opt.cache, step));
    v->timings.assemble_seconds = Since(env, t);
    v->chunked = true;
    v->assemble = a.stats;
    v->mapped_path = a.path;
    t = env->NowMonotonicNanos();
    if (step) step("map " + m.version);
    // The Hold's descriptor: the very inode the hold protects, even if the name were replaced.
    mapping = env->MapFd(a.hold.fd(), a.path);
    v->hold = std::move(a.hold);
  } else {
    if (!opt.stage_dir.empty()) {
      StageRequest req{root,
                       VersionRel(m.model, m.version),
                       opt.stage_dir,
                       m.model,
                       m.version,
                       m.bytes,
                       opt.stage_threads};
      MS_ASSIGN_OR_RETURN(v->mapped_path, StageFile(env, req));
      v->staged = true;
      v->timings.stage_seconds = Since(env, t);
    }
    t = env->NowMonotonicNanos();
    // Beneath the volume root (or the stage dir): a symlink planted on the volume is refused,
    // and a FIFO in the file's place cannot block the open.
    mapping =
        opt.stage_dir.empty()
            ? MapReadOnlyBeneath(env, root, VersionRel(m.model, m.version))
            : MapReadOnlyBeneath(env, opt.stage_dir, m.model + "/" + VersionFileName(m.version));
  }
  if (!mapping) return Fail(mapping.error().Context("map"));
  v->mapping = std::move(*mapping);
  std::span<const std::byte> bytes = v->mapping->bytes();
  // The header is a single page: a file truncated right now can still fault on it, so even
  // this read is guarded.
  msf::Header header;
  MS_RETURN_IF_ERROR(RunSigbusGuarded("read header", [&]() -> Status {
    auto h = msf::ParseHeader(bytes);
    if (!h) return Fail(h.error().Context(v->mapped_path));
    header = std::move(*h);
    return Ok();
  }));
  MS_RETURN_IF_ERROR(CheckIdentity(header, m, v->mapped_path));
  v->checksum = header.header_checksum;
  v->entry_count = header.entry_count;
  v->timings.map_seconds = Since(env, t);

  if (step) step("prefault " + m.version);
  MS_ASSIGN_OR_RETURN(PrefaultResult pre, Prefault(env, bytes, opt.prefault_threads));
  v->prefault_method = pre.method;
  v->timings.prefault_seconds = pre.seconds;

  t = env->NowMonotonicNanos();
  if (step) step("verify " + m.version);
  const bool verified_by_cache =
      v->chunked && (!v->assemble.already_assembled || v->assemble.reverified);
  MS_RETURN_IF_ERROR(RunSigbusGuarded("verify", [&]() -> Status {
    if (!verified_by_cache) {
      auto st = msf::VerifyContents(bytes, header);
      if (!st) return Fail(st.error().Context(v->mapped_path));
    }
    // Verified in full (just above, or by the cache): the header level is all that is left.
    auto reader = msf::Reader::Open(bytes, msf::VerifyLevel::kHeader);
    if (!reader) return Fail(reader.error().Context(v->mapped_path));
    v->reader.emplace(std::move(*reader));
    return Ok();
  }));
  v->header = std::move(header);
  v->timings.verify_seconds = Since(env, t);
  v->layers_loaded = 1;
  return v;
}

struct VolumeWorker::State {
  std::mutex mu;
  std::condition_variable cv;
  std::function<void(const SetStepFn&)> job;  // set by Start, taken by the thread
  std::function<void()> on_done;              // cleared when the owner goes away
  std::optional<Running> running;
  bool stop = false;
  std::thread thread;
};

VolumeWorker::VolumeWorker(std::function<void()> on_done)
    : state_(std::make_shared<State>()), now_([] { return DefaultEnv()->NowMonotonicNanos(); }) {
  state_->on_done = std::move(on_done);
  // The thread holds its own reference: it may outlive this object (see the destructor).
  state_->thread = std::thread([s = state_] {
    std::unique_lock lock(s->mu);
    for (;;) {
      s->cv.wait(lock, [&] { return s->stop || s->job; });
      if (!s->job) return;  // stopped while idle
      auto job = std::move(s->job);
      s->job = nullptr;
      lock.unlock();
      // The step setter holds the state, never the VolumeWorker: the job may outlive it.
      job([s](std::string step) {
        std::lock_guard step_lock(s->mu);
        if (s->running) s->running->step = std::move(step);
      });
      job = nullptr;  // release what it captured before reporting done
      lock.lock();
      s->running.reset();
      if (s->on_done) s->on_done();
      if (s->stop) return;
    }
  });
}

VolumeWorker::~VolumeWorker() {
  std::unique_lock lock(state_->mu);
  state_->stop = true;
  state_->on_done = nullptr;
  if (!state_->running) {
    lock.unlock();
    state_->cv.notify_all();
    state_->thread.join();
    return;
  }
  // Blocked in the kernel (a hung mount): joining could wait for ever. The thread keeps the
  // state alive and exits when (if) its job returns.
  spdlog::warn("volume worker still blocked step=\"{}\"; leaving it behind", state_->running->step);
  state_->thread.detach();
}

bool VolumeWorker::Start(std::string step, std::function<void(const SetStepFn&)> job) {
  {
    std::lock_guard lock(state_->mu);
    if (state_->running || state_->stop) return false;
    state_->running = Running{std::move(step), now_()};
    state_->job = std::move(job);
  }
  state_->cv.notify_all();
  return true;
}

bool VolumeWorker::busy() const {
  std::lock_guard lock(state_->mu);
  return state_->running.has_value();
}

std::optional<VolumeWorker::Running> VolumeWorker::running() const {
  std::lock_guard lock(state_->mu);
  return state_->running;
}

}  // namespace modelswap::agent
