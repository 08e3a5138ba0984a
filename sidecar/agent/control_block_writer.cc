// Creating or adopting a control block, the single-agent flock, record and heartbeat writes.
#include "sidecar/agent/control_block_writer.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <span>

#include "common/posix_error.h"
#include "common/shm_file.h"

namespace modelswap::agent {
namespace {

// Writes a zeroed, initialised control block to tmp and renames it over `path`.
Status CreateFresh(Env* env, const ControlBlockOptions& o, const std::string& path) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  (void)env->Remove(tmp);
  MS_ASSIGN_OR_RETURN(int fd, env->Open(tmp, OpenMode::kReadWriteNew));
  auto fail = [&](Error e) {
    env->Close(fd);
    (void)env->Remove(tmp);
    return Fail(std::move(e));
  };
  // App processes write their reader slots, and app containers often run as other users than
  // the agent: the file must be writable by all. Only the pod's containers can see the shm dir
  // (a per-pod emptyDir), so this opens it to nobody outside the pod.
  if (::fchmod(fd, 0666) != 0) return fail(ErrnoError("fchmod", tmp));
  if (auto st = env->Truncate(fd, MS_CTL_FILE_BYTES); !st) return fail(st.error());
  // Nobody else can see the file yet: the header is written with one pwrite (the rest stays the
  // zeros Truncate gave it) and published by the rename below.
  ms_ctl_header h{};
  h.magic = MS_CTL_MAGIC;
  h.layout_version = MS_CTL_LAYOUT_VERSION;
  h.slots_offset = MS_CTL_SLOTS_OFFSET;
  h.file_bytes = MS_CTL_FILE_BYTES;
  h.slot_count = MS_CTL_SLOT_COUNT;
  h.slot_bytes = MS_CTL_SLOT_BYTES;
  h.created_unix_ns = static_cast<uint64_t>(env->NowUnixNanos());
  std::memcpy(h.model_words, o.model.data(), std::min<size_t>(o.model.size(), 63));
  if (auto st = env->PWrite(fd, std::as_bytes(std::span(&h, 1)), 0); !st) return fail(st.error());
  env->Close(fd);
  MS_RETURN_IF_ERROR(env->Rename(tmp, path));
  return Ok();
}

}  // namespace

ControlBlockWriter::ControlBlockWriter(ControlBlockOptions options,
                                       std::unique_ptr<ctl::ControlBlockFile> file, bool adopted)
    : options_(std::move(options)), file_(std::move(file)), adopted_(adopted) {}

Result<std::unique_ptr<ControlBlockWriter>> ControlBlockWriter::OpenOrCreate(
    Env* env, const ControlBlockOptions& o) {
  MS_RETURN_IF_ERROR(env->CreateDirs(o.shm_dir));
  std::string path = ctl::ControlBlockPath(o.shm_dir, o.model);
  auto file = ctl::ControlBlockFile::Open(path);
  bool adopted = file && ctl::ModelName((*file)->header()) == o.model;
  if (!adopted) {
    if (!file && file.error().code() != Code::kNotFound) {
      spdlog::warn("control block path={} unusable ({}); replacing it", path,
                   file.error().message());
    }
    MS_RETURN_IF_ERROR(CreateFresh(env, o, path));
    file = ctl::ControlBlockFile::Open(path);
    if (!file) return Fail(file.error());
  }
  MS_RETURN_IF_ERROR(LockExclusive(
      (*file)->fd(), path, "control block " + path + " is held by another running agent (flock)"));
  auto w =
      std::unique_ptr<ControlBlockWriter>(new ControlBlockWriter(o, std::move(*file), adopted));
  ms_ctl_header& h = w->file_->header();
  // Relaxed: settings and counters, each meaningful alone.
  w->incarnation_ = ctl::Word(h.agent_incarnation).fetch_add(1, std::memory_order_relaxed) + 1;
  ctl::Word(h.heartbeat_interval_ns).store(o.heartbeat_interval_ns, std::memory_order_relaxed);
  ctl::Word(h.reader_timeout_ns).store(o.reader_timeout_ns, std::memory_order_relaxed);
  w->Tick();
  spdlog::info("control block path={} adopted={} incarnation={}", path, adopted, w->incarnation_);
  return w;
}

void ControlBlockWriter::Publish(const ctl::Record& record) {
  ctl::WriteRecord(file_->header(), record);
}

Result<ctl::Record> ControlBlockWriter::Current() {
  return ctl::ReadRecord(file_->header(), 4);  // we are the writer: it is stable unless torn
}

void ControlBlockWriter::Tick() {
  // The mapping is SIGBUS-guarded (control_block_access.h): a control block truncated under the
  // agent no longer kills it, and its stores would land in private pages no app sees. Exit, as
  // the fault used to: the restarted agent recreates the file (OpenOrCreate), apps re-attach.
  if (Status st = file_->Intact(); !st) {
    spdlog::critical("control block unusable, restarting: {}", st.error().message());
    std::_Exit(70);
  }
  // Relaxed: a lone timestamp for diagnostics; nothing is published through it.
  ctl::Word(file_->header().agent_heartbeat_ns)
      .store(ctl::MonotonicNanos(), std::memory_order_relaxed);
}

std::vector<ctl::SlotView> ControlBlockWriter::LiveSlots() {
  std::vector<ctl::SlotView> live;
  uint64_t now = ctl::MonotonicNanos();
  for (uint32_t i = 0; i < MS_CTL_SLOT_COUNT; ++i) {
    ctl::SlotView v = ctl::ReadSlot(ctl::Slot(file_->header(), i));
    if (v.Live(now, options_.reader_timeout_ns)) live.push_back(v);
  }
  return live;
}

}  // namespace modelswap::agent
