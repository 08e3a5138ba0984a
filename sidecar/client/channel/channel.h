// Shared-memory channels: one writer, any number of readers, `<shm-dir>/channels/<name>.chan`.
//
// A channel is a ring of N slots (N a power of two) plus a latest-value mailbox, each slot guarded
// by its own seqlock; the byte layout and both protocols are in channel_layout.h. Properties:
//   - the writer never waits and never takes a lock on the hot path (Publish is wait-free);
//   - readers never write shared state (they map the file read-only) and never return a
//     half-written message; ReadNext tells exactly how many messages were skipped;
//   - sequence ids start at 1 and stay monotonic across writer restarts (kept in the file);
//   - a writer killed at any instruction leaves a file the next writer and every reader can use.
//
// Threading: a ChannelWriter or ChannelReader object is used by one thread at a time (it keeps a
// private cursor); open one reader per reading thread. Any number of processes may read.
// Errors: Open() returns an Error naming the failed check; the hot-path calls return a ReadStatus.
//
// A file truncated under the mapping (another process of the pod calling ftruncate on it) would
// raise SIGBUS at the next access and kill the process. Plain files cannot be sealed against
// shrinking (F_SEAL_SHRINK needs a memfd, which has no name in the shm dir), and checking the
// size before each access (fstat) costs a system call per read and still races the truncation.
// So both ends register their mapping with the mapping guard (common/mapping_guard.h): the fault
// is survived (the lost pages read as zeros, and a writer's stores land in private pages), and
// the next read returns kFileDamaged, the next Publish 0 with damaged() true. Re-open the
// channel (a writer re-creates it) to go on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/mapping_guard.h"
#include "common/shm_file.h"
#include "common/status.h"
#include "sidecar/client/channel/channel_layout.h"

namespace modelswap {

struct ChannelOptions {
  // Ring size N: a power of two in [1, MS_CHANNEL_MAX_SLOTS]. A reader can fall up to N - 1
  // messages behind before it starts losing messages.
  uint32_t slot_count = 16;
  // Largest message, in [1, MS_CHANNEL_MAX_MESSAGE_BYTES]. Fixed at creation.
  uint32_t message_bytes = 0;
};

// Where a new reader's ReadNext cursor starts.
enum class StartAt {
  kNextPublished,    // only messages published after Open
  kOldestAvailable,  // the oldest message still in the ring
};

enum class ReadStatus : int {
  kMessage = 0,         // out holds a complete message
  kEmpty = 1,           // nothing (new) to read
  kBufferTooSmall = 2,  // out.size() < message_bytes(); nothing consumed
  // The writer overwrote the slot during every one of kChannelReadTries copies (a writer
  // publishing back to back into a small ring): nothing consumed but the messages the cursor
  // provably lost (counted in the next result's missed). Call again; a larger ring avoids it.
  kBusy = 3,
  // The file was truncated (or a page could not be read) under the mapping: out holds nothing
  // usable, now or later. Re-open the channel.
  kFileDamaged = 4,
};

// How many times one ReadNext or ReadLatest call tries to copy a message before it gives up
// (kBusy, or kEmpty when published_seq never moved: a writer stopped mid-publish). Each try is
// one copy of at most message_bytes, so a call always returns, however fast the writer is.
// A live writer that is not lapping the reader lets the first or second try succeed.
inline constexpr uint32_t kChannelReadTries = 1024;

struct ReadResult {
  ReadStatus status = ReadStatus::kEmpty;
  uint32_t length = 0;  // payload bytes written to out
  uint64_t seq = 0;     // sequence id of the message
  // Messages between the previous one this reader returned and this one that it never returned
  // (overwritten before it got to them, or jumped over by ReadLatest). Exact.
  uint64_t missed = 0;
};

// Checks a channel name: [A-Za-z0-9][A-Za-z0-9._-]{0,62}, so it cannot escape the directory.
Status ValidateChannelName(std::string_view name);
// `<shm_dir>/channels/<name>.chan` (name must be valid).
std::string ChannelPath(std::string_view shm_dir, std::string_view name);

class ChannelWriter {
 public:
  // Creates the channel, or attaches to an existing one whose slot_count and message_bytes equal
  // options (else kFailedPrecondition naming both values) and continues its sequence. Fails with
  // kFailedPrecondition while another live writer holds the channel.
  [[nodiscard]] static Result<ChannelWriter> Open(std::string_view shm_dir, std::string_view name,
                                                  const ChannelOptions& options);

  ChannelWriter(ChannelWriter&&) noexcept = default;
  ChannelWriter& operator=(ChannelWriter&&) noexcept = default;

  // Publishes msg and returns its sequence id, or 0 (and publishes nothing) if msg is longer than
  // message_bytes() or the file is damaged (damaged(): truncated under the mapping, so nothing
  // published reaches any reader). Wait-free: a fixed number of stores plus the copy.
  [[nodiscard]] uint64_t Publish(std::span<const std::byte> msg);

  uint64_t last_published() const { return next_seq_ - 1; }
  uint32_t message_bytes() const { return message_bytes_; }
  uint32_t slot_count() const { return mask_ + 1; }
  // Slots a previous writer left mid-write (odd version) when this one attached.
  uint32_t abandoned_slots() const { return abandoned_slots_; }
  const std::string& path() const { return map_.path(); }
  // True once the file was truncated (or failed to read) under the mapping: re-create it.
  bool damaged() const { return guard_.damaged(); }

 private:
  ChannelWriter(ShmMapping map, GuardedRange guard)
      : map_(std::move(map)), guard_(std::move(guard)) {}
  void Recover();

  ShmMapping map_;
  GuardedRange guard_;     // declared after map_: unregistered before the mapping goes
  uint64_t next_seq_ = 1;  // writer-private; published_seq in the file trails it by one
  uint32_t mask_ = 0;
  uint32_t message_bytes_ = 0;
  uint32_t stride_ = 0;
  uint32_t abandoned_slots_ = 0;
  uint64_t last_publish_ticks_ = 0;  // TSC at the previous Publish (x86-64: gates CLDEMOTE)
};

class ChannelReader {
 public:
  // Attaches read-only. expected_message_bytes: 0 accepts any size, else it must equal the
  // channel's (kFailedPrecondition otherwise). kNotFound if the channel does not exist yet.
  [[nodiscard]] static Result<ChannelReader> Open(std::string_view shm_dir, std::string_view name,
                                                  uint32_t expected_message_bytes,
                                                  StartAt start = StartAt::kNextPublished);

  ChannelReader(ChannelReader&&) noexcept = default;
  ChannelReader& operator=(ChannelReader&&) noexcept = default;

  // The message at the cursor (skipping, and counting, any that were overwritten), or kEmpty if
  // it is not published yet. out.size() must be >= message_bytes(). Lock-free: retries only when
  // the writer overwrote the slot during the copy, at most kChannelReadTries times (then kBusy).
  [[nodiscard]] ReadResult ReadNext(std::span<std::byte> out);
  // The newest complete message (again, if nothing newer arrived); moves the cursor past it and
  // reports the messages it jumped over as missed. kEmpty before the first publish, and when the
  // newest slot cannot be read in kChannelReadTries tries while published_seq stays put (a writer
  // stopped between its slot and sequence stores, or a damaged file); kBusy when it cannot be
  // read in kChannelReadTries tries because the writer keeps publishing over it. Either way every
  // call returns; call again later. (Falling back to an older message would hand out something
  // that is not the latest while claiming it is; the caller decides whether to retry.)
  [[nodiscard]] ReadResult ReadLatest(std::span<std::byte> out);

  // Newest published sequence id: an estimate, it may advance right after the call.
  uint64_t published_seq() const;
  uint64_t writer_epoch() const;
  uint64_t next_seq() const { return next_seq_; }
  uint64_t total_missed() const { return total_missed_; }
  // Copies discarded because the writer changed the slot meanwhile (contention diagnostic).
  uint64_t torn_retries() const { return torn_retries_; }
  // Tries that found the slot overwritten before copying it (ReadNext's cursor jumps, ReadLatest's
  // re-reads of published_seq). With torn_retries: every try that did not return a result.
  uint64_t lapped_retries() const { return lapped_retries_; }
  uint32_t message_bytes() const { return message_bytes_; }
  uint32_t slot_count() const { return mask_ + 1; }
  const std::string& path() const { return map_.path(); }
  // True once the file was truncated (or failed to read) under the mapping (reads then return
  // kFileDamaged).
  bool damaged() const { return guard_.damaged(); }
  // True when the path no longer names the mapped file (removed or replaced): re-open to follow.
  [[nodiscard]] Result<bool> Replaced() const;

 private:
  ChannelReader(ShmMapping map, GuardedRange guard)
      : map_(std::move(map)), guard_(std::move(guard)) {}
  // Copies message `seq` if its slot holds it; returns false if the slot changed meanwhile.
  bool TryCopy(uint64_t seq, uint64_t version, std::span<std::byte> out, uint32_t* length);
  ReadResult ReadNextUnguarded(std::span<std::byte> out);
  ReadResult ReadLatestUnguarded(std::span<std::byte> out);

  ShmMapping map_;
  GuardedRange guard_;  // declared after map_: unregistered before the mapping goes
  uint64_t next_seq_ = 1;
  uint64_t known_published_ = 0;  // last published_seq seen: ids up to it need no header load
  uint64_t pending_missed_ = 0;   // skipped since the last returned message
  uint64_t total_missed_ = 0;
  uint64_t torn_retries_ = 0;
  uint64_t lapped_retries_ = 0;
  uint32_t mask_ = 0;
  uint32_t message_bytes_ = 0;
  uint32_t stride_ = 0;
};

// Checks a mapped header against the file size and the caller's expectations (0 = any). Each
// failed check has its own message. Exposed for tests.
[[nodiscard]] Status ValidateChannelHeader(const ms_channel_header& header, uint64_t file_size,
                                           uint32_t expected_slot_count,
                                           uint32_t expected_message_bytes);

}  // namespace modelswap
