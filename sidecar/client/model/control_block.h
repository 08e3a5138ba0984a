/* Shared-memory layout of a model's control block: `<shm-dir>/<model>.ctl`.
 *
 * The one definition of the bytes the agent (sidecar/agent/), the C++ and C clients
 * (client.h, modelswap.h) and the Python client (python/modelswap/model.py) share. Plain C so
 * any language can include or transcribe it; tests/sidecar/client/model/layout_test.py checks that
 * the Python transcription matches these offsets.
 *
 * Who writes what:
 *   - the agent creates the file (temp file + rename, so nobody sees it half-initialised), holds
 *     an exclusive flock(2) on it for as long as it runs (one agent per file; the kernel drops
 *     the lock when the agent dies), and is the only writer of the header and the record;
 *   - each app process claims one reader slot by taking an OFD write lock (fcntl F_OFD_SETLK;
 *     Python: lockf) on the slot's first byte, and is the only writer of that slot until it
 *     closes the file. The kernel drops the lock when the process dies, so a dead process's slot
 *     is free for the next one without any cleanup. Containers of a pod share no PID namespace,
 *     so nothing here stores or trusts PIDs for liveness: the agent decides that a slot is live
 *     by its heartbeat alone.
 *
 * All integers little-endian (x86-64, arm64); the clients refuse other hosts. Fields marked
 * (atomic) are only read and written with aligned 8-byte atomic accesses (C++: std::atomic_ref,
 * C: __atomic builtins, Python: memoryview.cast("Q") items, which are single 8-byte loads and
 * stores). Strings are NUL-padded UTF-8 stored in u64 words, so they too are copied atomically
 * word by word inside the seqlock.
 *
 *   offset size field                 meaning
 *   ------ ---- --------------------- -------------------------------------------------------
 *   cache line 0: immutable after creation
 *        0    8 magic                 MS_CTL_MAGIC, the bytes "MSWPCTRL"
 *        8    4 layout_version        MS_CTL_LAYOUT_VERSION (1)
 *       12    4 slots_offset          MS_CTL_SLOTS_OFFSET (4096): offset of slot 0
 *       16    8 file_bytes            slots_offset + slot_count * slot_bytes
 *       24    4 slot_count            MS_CTL_SLOT_COUNT (256)
 *       28    4 slot_bytes            MS_CTL_SLOT_BYTES (64)
 *       32    8 created_unix_ns       wall clock at creation (diagnostics)
 *       40   24 reserved0             zero
 *   cache line 1: agent-owned, written about once per agent tick
 *       64    8 agent_incarnation     (atomic) +1 each time an agent attaches to this file
 *       72    8 agent_heartbeat_ns    (atomic) CLOCK_MONOTONIC of the agent's last tick
 *       80    8 heartbeat_interval_ns (atomic) readers refresh their slot at least this often
 *       88    8 reader_timeout_ns     (atomic) a slot whose heartbeat is older is dead
 *       96   32 reserved1             zero
 *   cache lines 2-3: immutable
 *      128   64 model                 model name, NUL-padded (at most 63 bytes)
 *      192   64 reserved2             zero
 *   cache lines 4-54: the active-version record, agent-owned, seqlock-protected
 *      256    8 seq                   (atomic) even: stable; odd: the agent is rewriting
 *      264    8 generation            (atomic) manifest generation of the version; 0 = none
 *      272    8 bytes                 (atomic) file size
 *      280    8 checksum              (atomic) the .msf identity (its header_checksum)
 *      288    8 state_word            (atomic) low 32 bits: MS_CTL_STATE_*; high 32: path_len
 *      296    8 published_unix_ns     (atomic) when the agent made it active
 *      304   64 version               (atomic words) version name
 *      368 1024 path                  (atomic words) absolute path of the file to map; for a
 *                                     chain, its newest layer (the version itself)
 *     1392    8 layer_count           (atomic) 0 or 1: `path` is one full version; n in 2..8:
 *                                     a chain (a delta version, newest first): `path` is the
 *                                     newest layer, chain_words name the n-1 layers below
 *     1400    8 chain_len             (atomic) bytes of chain_words in use
 *     1408   64 layer_checksums[8]    (atomic) header_checksum of each lower layer, newest
 *                                     first (entry i belongs to the i-th path of chain_words)
 *     1472 2048 chain_words           (atomic words) the lower layers' absolute paths, newest
 *                                     first, each followed by '\n' (so at most 2048 bytes)
 *     3520  576 reserved3             zero, up to the slots
 *   slot i at slots_offset + i * 64 (one cache line each, owned by the process holding its lock)
 *        0    8 owner                 (atomic) random non-zero token of the holder; 0 = free
 *        8    8 heartbeat_ns          (atomic) CLOCK_MONOTONIC of the holder's last heartbeat
 *       16    8 min_generation        (atomic) oldest generation the holder still reads
 *       24    8 max_generation        (atomic) newest generation it reads; 0 = holds nothing
 *       32    8 pid                   (atomic) holder's pid in its own namespace (diagnostics)
 *       40   24 reserved              zero
 *
 * Chains (delta versions, docs/design.md): the chain fields grew into what was reserved3, with
 * layout_version still 1. A client that predates them reads only `path`, whose file is then a
 * delta .msf: its header flags (kFlagDelta) make that client refuse it, so it never serves a
 * delta alone as if it were a whole version. A layer_count of 0 (a record written by an agent
 * that predates chains, whose reserved3 was zero) means one full version, as 1 does.
 *
 * Record protocol (Boehm's seqlock; C++: control_block_access.h; Python: model.py):
 *   agent:  s = seq; seq = s + 1 (relaxed); release fence; fields (relaxed); seq = s + 2
 *           (release)
 *   reader: s1 = seq (acquire), retry while odd; fields (relaxed); acquire fence;
 *           s2 = seq (relaxed); the copy is consistent only if s1 == s2.
 *   The reader's acquire load of seq pairs with the agent's final release store (it sees every
 *   field of that record); the agent's release fence pairs with the reader's acquire fence (a
 *   reader that saw any field of a newer write also sees seq moved on, and retries).
 *   `seq` is also read alone (acquire) by the clients' fast path: equal to the seq of the copy a
 *   client already holds means the record has not been written since; anything else sends it to
 *   the seqlock read.
 *
 * Slot protocol: a slot holds generation g iff owner != 0, now - heartbeat_ns <=
 * reader_timeout_ns, max_generation != 0 and min_generation <= g <= max_generation. The holder
 * writes these words one at a time, each change only ever widening the range first:
 *   to start reading g: max = g, then min = g if it held nothing;
 *   to stop reading old versions: min = new oldest;
 *   to hold nothing: min = 0 (so [0, max]: everything up to max), then max = 0.
 * So the agent, reading the words in any interleaving, never sees a range narrower than what
 * the holder reads. Before a client maps the version it just read from the record, it stores
 * max (seq_cst fence) and re-reads the record's generation; the agent stores the record (seq_cst
 * fence) before it reads the slots to decide what to unmap: one of the two always sees the
 * other (Dekker), so the agent never drops pages of a version a reader has announced. (Those
 * drops only cost page-cache misses anyway: each client maps the file itself.)
 */
#ifndef MODELSWAP_SIDECAR_CLIENT_CONTROL_BLOCK_H_
#define MODELSWAP_SIDECAR_CLIENT_CONTROL_BLOCK_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "MSWPCTRL" read as a little-endian u64. */
#define MS_CTL_MAGIC UINT64_C(0x4C5254435057534D)
#define MS_CTL_LAYOUT_VERSION 1u
#define MS_CTL_SLOTS_OFFSET 4096u
#define MS_CTL_SLOT_COUNT 256u
#define MS_CTL_SLOT_BYTES 64u
#define MS_CTL_FILE_BYTES (MS_CTL_SLOTS_OFFSET + MS_CTL_SLOT_COUNT * MS_CTL_SLOT_BYTES)
#define MS_CTL_VERSION_BYTES 64u
#define MS_CTL_PATH_BYTES 1024u
#define MS_CTL_MODEL_BYTES 64u
#define MS_CTL_MAX_LAYERS 8u /* the .msf format's kMaxChainLayers: a full base + 7 deltas */
#define MS_CTL_CHAIN_BYTES 2048u

/* Record states. */
#define MS_CTL_STATE_NONE 0u   /* no version published yet */
#define MS_CTL_STATE_ACTIVE 1u /* the record names a mapped, verified, prefaulted version */
#define MS_CTL_STATE_FAILED 2u /* the agent dropped the named version (e.g. truncated file) */

typedef struct ms_ctl_record {
  uint64_t seq;
  uint64_t generation;
  uint64_t bytes;
  uint64_t checksum;
  uint64_t state_word;
  uint64_t published_unix_ns;
  uint64_t version_words[MS_CTL_VERSION_BYTES / 8];
  uint64_t path_words[MS_CTL_PATH_BYTES / 8];
  uint64_t layer_count;
  uint64_t chain_len;
  uint64_t layer_checksums[MS_CTL_MAX_LAYERS];
  uint64_t chain_words[MS_CTL_CHAIN_BYTES / 8];
} ms_ctl_record;

typedef struct ms_ctl_header {
  /* cache line 0: immutable */
  uint64_t magic;
  uint32_t layout_version;
  uint32_t slots_offset;
  uint64_t file_bytes;
  uint32_t slot_count;
  uint32_t slot_bytes;
  uint64_t created_unix_ns;
  uint8_t reserved0[24];
  /* cache line 1: agent-owned */
  uint64_t agent_incarnation;
  uint64_t agent_heartbeat_ns;
  uint64_t heartbeat_interval_ns;
  uint64_t reader_timeout_ns;
  uint8_t reserved1[32];
  /* cache lines 2-3: immutable */
  uint64_t model_words[MS_CTL_MODEL_BYTES / 8];
  uint8_t reserved2[64];
  /* cache lines 4-54: seqlock-protected record */
  ms_ctl_record record;
  uint8_t reserved3[MS_CTL_SLOTS_OFFSET - 256 - sizeof(ms_ctl_record)];
} ms_ctl_header;

typedef struct ms_ctl_slot {
  uint64_t owner;
  uint64_t heartbeat_ns;
  uint64_t min_generation;
  uint64_t max_generation;
  uint64_t pid;
  uint64_t reserved[3];
} ms_ctl_slot;

#ifdef __cplusplus
} /* extern "C" */
#define MS_CTL_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MS_CTL_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, magic) == 0, "magic offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, layout_version) == 8, "layout_version offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, slots_offset) == 12, "slots_offset offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, file_bytes) == 16, "file_bytes offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, slot_count) == 24, "slot_count offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, slot_bytes) == 28, "slot_bytes offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, created_unix_ns) == 32, "created offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, agent_incarnation) == 64,
                     "agent fields must start cache line 1");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, agent_heartbeat_ns) == 72, "agent heartbeat offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, heartbeat_interval_ns) == 80, "interval offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, reader_timeout_ns) == 88, "timeout offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, model_words) == 128, "model offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) == 256, "record must start cache line 4");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, generation) == 264,
                     "generation offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, state_word) == 288,
                     "state offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, version_words) ==
                         304,
                     "version offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, path_words) == 368,
                     "path offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, layer_count) == 1392,
                     "layer_count offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, chain_len) == 1400,
                     "chain_len offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, layer_checksums) ==
                         1408,
                     "layer_checksums offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, record) + offsetof(ms_ctl_record, chain_words) == 1472,
                     "chain_words offset");
MS_CTL_STATIC_ASSERT(sizeof(ms_ctl_record) == 3264, "record size");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_header, reserved3) == 3520, "reserved3 offset");
MS_CTL_STATIC_ASSERT(sizeof(ms_ctl_header) == MS_CTL_SLOTS_OFFSET, "header fills the first page");
MS_CTL_STATIC_ASSERT(sizeof(ms_ctl_slot) == MS_CTL_SLOT_BYTES, "slot is one cache line");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_slot, heartbeat_ns) == 8, "slot heartbeat offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_slot, min_generation) == 16, "slot min offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_slot, max_generation) == 24, "slot max offset");
MS_CTL_STATIC_ASSERT(offsetof(ms_ctl_slot, pid) == 32, "slot pid offset");

#endif /* MODELSWAP_SIDECAR_CLIENT_CONTROL_BLOCK_H_ */
