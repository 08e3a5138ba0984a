// C++ access to a mapped control block (layout and protocols: control_block.h).
//
// The agent (writer of the header and record) and the C++ client (writer of its own slot) both
// go through these helpers, so every atomic access to the shared bytes is in one place, with
// its memory order next to the reason. ControlBlockFile owns the mapping of a `.ctl` file.
//
// Thread safety: ReadRecord, SlotView reads and the header getters may run in any thread and any
// process at once. WriteRecord and SetAgent* are for the single agent holding the file's flock;
// Slot writes are for the single process holding the slot's lock.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/mapping_guard.h"
#include "common/shm_file.h"
#include "common/status.h"
#include "sidecar/client/model/control_block.h"

namespace modelswap::ctl {

static_assert(std::endian::native == std::endian::little, "control blocks are little-endian");
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free, "8-byte atomics must be lock-free");
static_assert(alignof(ms_ctl_header) >= 8 && alignof(ms_ctl_slot) >= 8, "words must be aligned");

// Every shared word is accessed through this, never as a plain load or store.
inline std::atomic_ref<uint64_t> Word(uint64_t& w) {
  return std::atomic_ref<uint64_t>(w);
}

// CLOCK_MONOTONIC in nanoseconds: the clock of every heartbeat. All containers of a pod run on
// one kernel, so they share it (Kubernetes does not use time namespaces).
uint64_t MonotonicNanos();

std::string ControlBlockPath(std::string_view shm_dir, std::string_view model);

// A layer below the record's `path` in a chain (a delta version): the file to map and the
// header_checksum it must have.
struct LowerLayer {
  std::string path;
  uint64_t checksum = 0;
  bool operator==(const LowerLayer&) const = default;
};

// One copy of the record, consistent under the seqlock.
struct Record {
  uint64_t seq = 0;  // the even seq this copy was read under (ReadRecord only)
  uint64_t generation = 0;
  uint64_t bytes = 0;
  uint64_t checksum = 0;
  uint32_t state = MS_CTL_STATE_NONE;
  uint64_t published_unix_ns = 0;
  std::string version;
  std::string path;  // a chain's newest layer (the version itself)
  // A chain: the layers below `path`, newest first, the full base last. Empty: `path` is one
  // full version (layer_count 0 or 1 in the shared record).
  std::vector<LowerLayer> lower = {};

  uint32_t layer_count() const { return static_cast<uint32_t>(lower.size()) + 1; }
};

// Whether a record can be stored as it is: at most MS_CTL_MAX_LAYERS layers, every path short
// enough for its field and free of '\n', the lower layers' paths within MS_CTL_CHAIN_BYTES.
// kInvalidArgument naming what does not fit. WriteRecord requires it.
[[nodiscard]] Status CheckRecordFits(const Record& r);

// Checks magic, layout version, sizes against the real file size, before anything else is read.
[[nodiscard]] Status ValidateHeader(const ms_ctl_header& h, uint64_t file_size);

// The model name stored at creation.
std::string ModelName(ms_ctl_header& h);

// Seqlock read. kUnavailable if the agent kept the record odd or changing for max_tries reads
// (an agent killed mid-write leaves seq odd until the next agent rewrites the record);
// kCorruption if a consistent copy has chain fields that do not describe a chain (a
// layer_count above MS_CTL_MAX_LAYERS, a chain_len past its field, a path count other than
// layer_count - 1). When `h` is the header of an open ControlBlockFile, the copy is also checked
// against ControlBlockFile::Intact after it is read: kUnavailable naming the file and "truncated"
// (the copy may hold zeros from pages the file lost, so it is never returned).
[[nodiscard]] Result<Record> ReadRecord(ms_ctl_header& h, int max_tries = 10000);

// The fast-path check: the record's seq alone. Acquire, like the first load of a seqlock read,
// so a caller that sees the seq of its last full read knows nothing was written since.
inline uint64_t RecordSeq(ms_ctl_header& h) {
  return Word(h.record.seq).load(std::memory_order_acquire);
}

// Agent only: seqlock write of the whole record, chain fields included. REQUIRES:
// CheckRecordFits(r) (what does not fit is cut, and readers then refuse the record). Ends with a
// seq_cst fence, so a following read of the slots cannot be ordered before the new record is
// visible (the Dekker pairing with the clients' claim in control_block.h).
void WriteRecord(ms_ctl_header& h, const Record& r);

inline ms_ctl_slot& Slot(ms_ctl_header& h, uint32_t i) {
  return reinterpret_cast<ms_ctl_slot*>(reinterpret_cast<char*>(&h) + MS_CTL_SLOTS_OFFSET)[i];
}

// What the agent reads from one slot.
struct SlotView {
  uint64_t owner = 0, heartbeat_ns = 0, min_generation = 0, max_generation = 0, pid = 0;
  // Live (heartbeat within the timeout at `now`) and holding anything.
  bool Live(uint64_t now, uint64_t timeout) const {
    return owner != 0 && heartbeat_ns + timeout >= now;
  }
  bool Holds(uint64_t generation) const {
    return max_generation != 0 && min_generation <= generation && generation <= max_generation;
  }
};
SlotView ReadSlot(ms_ctl_slot& s);

// A mapped .ctl file (read-write, MAP_SHARED) and its descriptor. Closing the descriptor drops
// every lock this process took on it (the agent's flock, a client's slot lock).
//
// The mapping is registered with the SIGBUS guard (common/mapping_guard.h) for as long as the
// object lives: a file truncated under the process (by hand, by a broken cleanup tool) would
// otherwise kill an app at its next RecordSeq load or slot heartbeat. After a fault the lost pages
// read as zeros and the client's stores land in private pages; Intact() (checked by ReadRecord)
// turns that into an error, and the app keeps the version handles it already holds (they map the
// version files, not this one).
class ControlBlockFile {
 public:
  ControlBlockFile(const ControlBlockFile&) = delete;
  ControlBlockFile& operator=(const ControlBlockFile&) = delete;
  ~ControlBlockFile();

  // Opens and maps an existing file read-write, then validates its header. kNotFound if absent,
  // kCorruption if it is not a valid control block.
  [[nodiscard]] static Result<std::unique_ptr<ControlBlockFile>> Open(const std::string& path);

  ms_ctl_header& header() const { return *map_.As<ms_ctl_header>(); }
  int fd() const { return map_.fd(); }
  uint64_t inode() const { return map_.inode(); }
  const std::string& path() const { return map_.path(); }

  // Whether `path` still names this file (the agent may have replaced an invalid one).
  bool StillLinked() const;

  // Ok while the file is a whole control block under this mapping. kUnavailable naming the file
  // and "truncated" if fstat says it is now shorter than MS_CTL_FILE_BYTES (a truncation inside
  // the mapped pages reads zeros without any fault), or if a SIGBUS hit the mapping (the guard
  // replaced the pages past the fault with zeros). One fstat(2): slow paths only.
  [[nodiscard]] Status Intact() const;

 private:
  ControlBlockFile(ShmMapping map, GuardedRange guard)
      : map_(std::move(map)), guard_(std::move(guard)) {}
  ShmMapping map_;
  GuardedRange guard_;  // declared after map_: unregistered before the mapping goes
};

}  // namespace modelswap::ctl
