// Seqlock record reads and writes, slot reads, and mapping of `.ctl` files.
#include "sidecar/client/model/control_block_access.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include "common/env.h"

namespace modelswap::ctl {
namespace {

// Copies a NUL-padded string out of atomic words (inside a seqlock read).
std::string LoadString(uint64_t* words, size_t n_words) {
  std::string out(n_words * 8, '\0');
  for (size_t i = 0; i < n_words; ++i) {
    uint64_t w = Word(words[i]).load(std::memory_order_relaxed);
    std::memcpy(out.data() + i * 8, &w, 8);
  }
  out.resize(::strnlen(out.data(), out.size()));
  return out;
}

// Stores s zero-padded into all n_words atomic words (inside the seqlock write); truncates to
// fit.
void StoreBytes(uint64_t* words, size_t n_words, std::string_view s) {
  std::string padded(n_words * 8, '\0');
  std::memcpy(padded.data(), s.data(), std::min(s.size(), padded.size()));
  for (size_t i = 0; i < n_words; ++i) {
    uint64_t w;
    std::memcpy(&w, padded.data() + i * 8, 8);
    Word(words[i]).store(w, std::memory_order_relaxed);
  }
}

// Stores s NUL-padded; truncates to keep at least one NUL.
void StoreString(uint64_t* words, size_t n_words, std::string_view s) {
  StoreBytes(words, n_words, s.substr(0, std::min(s.size(), n_words * 8 - 1)));
}

// Copies the first `bytes` bytes out of atomic words (inside a seqlock read). `bytes` may be
// torn; the caller clamps it to the field, and the seq check discards a torn copy.
std::string LoadBytes(uint64_t* words, size_t bytes) {
  std::string out((bytes + 7) / 8 * 8, '\0');
  for (size_t i = 0; i < out.size() / 8; ++i) {
    uint64_t w = Word(words[i]).load(std::memory_order_relaxed);
    std::memcpy(out.data() + i * 8, &w, 8);
  }
  out.resize(bytes);
  return out;
}

// The chain fields of a consistent copy, checked: lower layers newest first.
Result<std::vector<LowerLayer>> ParseChain(uint64_t layer_count, uint64_t chain_len,
                                           const std::string& chain,
                                           const uint64_t (&checksums)[MS_CTL_MAX_LAYERS]) {
  std::vector<LowerLayer> lower;
  if (layer_count <= 1) return lower;  // one full version (0: an agent from before chains)
  if (layer_count > MS_CTL_MAX_LAYERS) {
    return Fail(Code::kCorruption, "control block: layer_count " + std::to_string(layer_count) +
                                       " is above " + std::to_string(MS_CTL_MAX_LAYERS));
  }
  if (chain_len > MS_CTL_CHAIN_BYTES) {
    return Fail(Code::kCorruption,
                "control block: chain_len " + std::to_string(chain_len) + " past its field");
  }
  size_t start = 0;
  while (start < chain.size()) {
    size_t nl = chain.find('\n', start);
    if (nl == std::string::npos || nl == start || lower.size() + 1 >= layer_count) {
      return Fail(Code::kCorruption, "control block: chain paths do not match layer_count " +
                                         std::to_string(layer_count));
    }
    lower.push_back(LowerLayer{chain.substr(start, nl - start), checksums[lower.size()]});
    start = nl + 1;
  }
  if (lower.size() + 1 != layer_count) {
    return Fail(Code::kCorruption, "control block: " + std::to_string(lower.size()) +
                                       " chain paths for layer_count " +
                                       std::to_string(layer_count));
  }
  return lower;
}

// The open ControlBlockFiles of this process, so ReadRecord, which is handed only a header,
// can check the file behind it (Intact) without a new parameter at every caller. A mutex, not
// atomics: it is taken on Open, on destruction and on the record's slow path, never per lookup.
std::mutex& OpenFilesMutex() {
  static std::mutex mu;
  return mu;
}
std::vector<const ControlBlockFile*>& OpenFiles() {
  static std::vector<const ControlBlockFile*> files;
  return files;
}

// Intact() of the open file whose header is `h`; Ok for a header that is no open file's (a
// test's buffer, a fuzzer's bytes).
Status CheckFileOf(const ms_ctl_header& h) {
  std::lock_guard lock(OpenFilesMutex());
  for (const ControlBlockFile* f : OpenFiles()) {
    if (&f->header() == &h) return f->Intact();
  }
  return Ok();
}

// The seqlock read proper (ReadRecord adds the file check).
Result<Record> ReadRecordCopy(ms_ctl_header& h, int max_tries);

}  // namespace

Status CheckRecordFits(const Record& r) {
  if (r.layer_count() > MS_CTL_MAX_LAYERS) {
    return Fail(Code::kInvalidArgument,
                "control block: a chain of " + std::to_string(r.layer_count()) +
                    " layers is longer than " + std::to_string(MS_CTL_MAX_LAYERS));
  }
  if (r.version.size() >= MS_CTL_VERSION_BYTES || r.path.size() >= MS_CTL_PATH_BYTES) {
    return Fail(Code::kInvalidArgument,
                "control block: version or path too long for the record: " + r.path);
  }
  size_t chain = 0;
  for (const LowerLayer& l : r.lower) {
    if (l.path.empty() || l.path.find('\n') != std::string::npos) {
      return Fail(Code::kInvalidArgument,
                  "control block: a chain layer path is empty or holds a newline: " + l.path);
    }
    chain += l.path.size() + 1;
  }
  if (chain > MS_CTL_CHAIN_BYTES) {
    return Fail(Code::kInvalidArgument, "control block: the chain's paths take " +
                                            std::to_string(chain) + " bytes, more than " +
                                            std::to_string(MS_CTL_CHAIN_BYTES));
  }
  return Ok();
}

uint64_t MonotonicNanos() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

std::string ControlBlockPath(std::string_view shm_dir, std::string_view model) {
  return JoinPath(shm_dir, std::string(model) + ".ctl");
}

Status ValidateHeader(const ms_ctl_header& h, uint64_t file_size) {
  if (file_size < sizeof(ms_ctl_header)) {
    return Fail(Code::kCorruption, "control block: file shorter than its header (" +
                                       std::to_string(file_size) + " bytes)");
  }
  MS_RETURN_IF_ERROR(CheckShmMagicAndVersion("control block", h.magic, MS_CTL_MAGIC,
                                             h.layout_version, MS_CTL_LAYOUT_VERSION));
  if (h.slots_offset != MS_CTL_SLOTS_OFFSET || h.slot_bytes != MS_CTL_SLOT_BYTES ||
      h.slot_count != MS_CTL_SLOT_COUNT) {
    return Fail(Code::kCorruption, "control block: unexpected slot geometry");
  }
  if (h.file_bytes != MS_CTL_FILE_BYTES || file_size != MS_CTL_FILE_BYTES) {
    return Fail(Code::kCorruption, "control block: file_bytes " + std::to_string(h.file_bytes) +
                                       " / real size " + std::to_string(file_size) +
                                       " differ from " + std::to_string(MS_CTL_FILE_BYTES));
  }
  return Ok();
}

std::string ModelName(ms_ctl_header& h) {
  return LoadString(h.model_words, MS_CTL_MODEL_BYTES / 8);
}

Result<Record> ReadRecord(ms_ctl_header& h, int max_tries) {
  Result<Record> copy = ReadRecordCopy(h, max_tries);
  // After the copy: a truncation during the read faulted into the guard (or shortened the file),
  // and either is seen here, so zeros from lost pages are never returned as a record.
  MS_RETURN_IF_ERROR(CheckFileOf(h));
  return copy;
}

namespace {

Result<Record> ReadRecordCopy(ms_ctl_header& h, int max_tries) {
  ms_ctl_record& r = h.record;
  for (int i = 0; i < max_tries; ++i) {
    // Acquire: pairs with the agent's final release store of seq; everything that write
    // stored is visible below.
    uint64_t s1 = Word(r.seq).load(std::memory_order_acquire);
    if (s1 & 1) continue;
    Record out;
    out.generation = Word(r.generation).load(std::memory_order_relaxed);
    out.bytes = Word(r.bytes).load(std::memory_order_relaxed);
    out.checksum = Word(r.checksum).load(std::memory_order_relaxed);
    uint64_t state_word = Word(r.state_word).load(std::memory_order_relaxed);
    out.published_unix_ns = Word(r.published_unix_ns).load(std::memory_order_relaxed);
    out.version = LoadString(r.version_words, MS_CTL_VERSION_BYTES / 8);
    out.path = LoadString(r.path_words, MS_CTL_PATH_BYTES / 8);
    uint64_t layer_count = Word(r.layer_count).load(std::memory_order_relaxed);
    uint64_t chain_len = Word(r.chain_len).load(std::memory_order_relaxed);
    uint64_t checksums[MS_CTL_MAX_LAYERS] = {};
    std::string chain;
    if (layer_count > 1) {  // a full version's copy reads no chain words
      for (size_t k = 0; k < MS_CTL_MAX_LAYERS; ++k)
        checksums[k] = Word(r.layer_checksums[k]).load(std::memory_order_relaxed);
      chain = LoadBytes(r.chain_words, std::min<uint64_t>(chain_len, MS_CTL_CHAIN_BYTES));
    }
    // Acquire fence: pairs with the agent's release fence after it made seq odd; if any field
    // above came from a newer write, the re-read of seq below sees that write's odd value.
    std::atomic_thread_fence(std::memory_order_acquire);
    uint64_t s2 = Word(r.seq).load(std::memory_order_relaxed);
    if (s1 != s2) continue;
    out.state = static_cast<uint32_t>(state_word);
    out.seq = s1;
    // Consistent: a malformed chain now is the agent's (or a stray writer's) doing, not a race.
    MS_ASSIGN_OR_RETURN(out.lower, ParseChain(layer_count, chain_len, chain, checksums));
    return out;
  }
  return Fail(Code::kUnavailable, "control block: record kept changing or stayed mid-write for " +
                                      std::to_string(max_tries) + " reads");
}

}  // namespace

void WriteRecord(ms_ctl_header& h, const Record& rec) {
  ms_ctl_record& r = h.record;
  // The agent is the only writer, so its own seq needs no ordering to read. A value left odd by
  // an agent that died mid-write is made even by starting from the next even number.
  uint64_t s = Word(r.seq).load(std::memory_order_relaxed);
  uint64_t odd = (s | 1) + ((s & 1) ? 2 : 0);
  Word(r.seq).store(odd, std::memory_order_relaxed);
  // Release fence: orders the odd seq before every field store below (pairs with the readers'
  // acquire fence).
  std::atomic_thread_fence(std::memory_order_release);
  Word(r.generation).store(rec.generation, std::memory_order_relaxed);
  Word(r.bytes).store(rec.bytes, std::memory_order_relaxed);
  Word(r.checksum).store(rec.checksum, std::memory_order_relaxed);
  uint64_t path_len = std::min<uint64_t>(rec.path.size(), MS_CTL_PATH_BYTES - 1);
  Word(r.state_word).store((path_len << 32) | rec.state, std::memory_order_relaxed);
  Word(r.published_unix_ns).store(rec.published_unix_ns, std::memory_order_relaxed);
  StoreString(r.version_words, MS_CTL_VERSION_BYTES / 8, rec.version);
  StoreString(r.path_words, MS_CTL_PATH_BYTES / 8, rec.path);
  std::string chain;
  for (size_t k = 0; k < MS_CTL_MAX_LAYERS; ++k) {
    uint64_t sum = k < rec.lower.size() ? rec.lower[k].checksum : 0;
    Word(r.layer_checksums[k]).store(sum, std::memory_order_relaxed);
    if (k < rec.lower.size()) chain += rec.lower[k].path + "\n";
  }
  chain.resize(std::min<size_t>(chain.size(), MS_CTL_CHAIN_BYTES));
  // Every word, zero past chain_len: no byte of an earlier, longer chain stays behind.
  StoreBytes(r.chain_words, MS_CTL_CHAIN_BYTES / 8, chain);
  Word(r.layer_count).store(rec.layer_count(), std::memory_order_relaxed);
  Word(r.chain_len).store(chain.size(), std::memory_order_relaxed);
  // Release: publishes every field above to readers whose acquire load sees the even seq.
  Word(r.seq).store(odd + 1, std::memory_order_release);
  // seq_cst fence: the Dekker half of the agent (control_block.h, slot protocol). The slot reads
  // that follow cannot be satisfied before this record is visible to clients.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

SlotView ReadSlot(ms_ctl_slot& s) {
  SlotView v;
  // Acquire on owner: pairs with the holder's release store of owner after it reset the other
  // words at claim time, so a fresh claim is never read with the previous holder's range.
  v.owner = Word(s.owner).load(std::memory_order_acquire);
  // The rest are independent words; each is valid alone by the widening order of the slot
  // protocol. Relaxed is enough: a stale value is either a wider range or an older heartbeat,
  // both of which only delay reclaim.
  v.heartbeat_ns = Word(s.heartbeat_ns).load(std::memory_order_relaxed);
  v.max_generation = Word(s.max_generation).load(std::memory_order_relaxed);
  v.min_generation = Word(s.min_generation).load(std::memory_order_relaxed);
  v.pid = Word(s.pid).load(std::memory_order_relaxed);
  return v;
}

Result<std::unique_ptr<ControlBlockFile>> ControlBlockFile::Open(const std::string& path) {
  ShmOpenOptions options;
  options.kind = "control block";
  options.header_bytes = sizeof(ms_ctl_header);
  // The path is the agent's (<shm-dir>/<model>.ctl), and has always been followed.
  options.follow_symlinks = true;
  MS_ASSIGN_OR_RETURN(ShmMapping map, OpenShmMapping(path, options));
  // Guarded before the first read: the header can fault too if the file is being truncated.
  // Read-write, as the client stores into its slot and the agent into the record.
  MS_ASSIGN_OR_RETURN(GuardedRange guard,
                      GuardedRange::Register(std::span<const std::byte>(map.base(), map.size()),
                                             GuardAccess::kReadWrite));
  auto file =
      std::unique_ptr<ControlBlockFile>(new ControlBlockFile(std::move(map), std::move(guard)));
  {
    std::lock_guard lock(OpenFilesMutex());
    OpenFiles().push_back(file.get());
  }
  if (auto ok = ValidateHeader(file->header(), file->map_.size()); !ok) {
    return Fail(ok.error().Context(path));
  }
  MS_RETURN_IF_ERROR(file->Intact());
  return file;
}

ControlBlockFile::~ControlBlockFile() {
  std::lock_guard lock(OpenFilesMutex());
  std::erase(OpenFiles(), this);
}

Status ControlBlockFile::Intact() const {
  struct stat st {};
  if (::fstat(map_.fd(), &st) != 0) {
    return Fail(Code::kIOError, "control block " + path() + ": fstat: " + std::strerror(errno));
  }
  if (static_cast<uint64_t>(st.st_size) < MS_CTL_FILE_BYTES) {
    return Fail(Code::kUnavailable, "control block " + path() + " was truncated to " +
                                        std::to_string(st.st_size) + " bytes under this process" +
                                        " (the agent recreates it; held versions stay readable)");
  }
  if (guard_.damaged()) {
    char addr[32];
    std::snprintf(addr, sizeof addr, "%#zx", static_cast<size_t>(guard_.fault_address()));
    return Fail(Code::kUnavailable, "control block " + path() + ": SIGBUS reading its mapping at " +
                                        addr + " (truncated or unreadable under this process)");
  }
  return Ok();
}

bool ControlBlockFile::StillLinked() const {
  Result<bool> replaced = map_.Replaced();
  return replaced && !*replaced;
}

}  // namespace modelswap::ctl
