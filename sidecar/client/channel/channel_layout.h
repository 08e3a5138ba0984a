/* Shared-memory layout of a modelswap channel file: `<shm-dir>/channels/<name>.chan`.
 *
 * This is the one definition of the bytes that C, C++ (channel.h) and Python
 * (python/modelswap/channel.py) share. It is plain C so any language can include or transcribe it;
 * tests/sidecar/client/channel/test_channel_py.py checks that the Python transcription matches
 * these offsets.
 *
 * A channel has one writer and any number of readers. The writer owns every byte after creation;
 * readers map the file read-only and never write shared state. Single-writer is enforced with an
 * exclusive flock(2) on the file, which the kernel drops when the writer dies (SIGKILL included),
 * so a restarted writer re-attaches without any stale-lock cleanup.
 *
 * All integers are little-endian (the library refuses big-endian hosts). Fields marked (atomic)
 * are read and written only with aligned 8- or 4-byte atomic accesses; everything else is written
 * once, before the file is linked into the channels directory, and never changes.
 *
 * File: header (256 bytes), then slot_count slots of slot_stride bytes each.
 *
 *   offset size field               meaning
 *   ------ ---- ------------------- ---------------------------------------------------------
 *   cache line 0: immutable after creation
 *        0    8 magic               MS_CHANNEL_MAGIC, the bytes "MSWPCHAN"
 *        8    4 layout_version      MS_CHANNEL_LAYOUT_VERSION (1)
 *       12    4 header_bytes        MS_CHANNEL_HEADER_BYTES (256): offset of slot 0
 *       16    4 slot_count          N, a power of two in [1, MS_CHANNEL_MAX_SLOTS]
 *       20    4 message_bytes       largest payload, in [1, MS_CHANNEL_MAX_MESSAGE_BYTES]
 *       24    4 slot_stride         ms_channel_slot_stride(message_bytes)
 *       28    4 slot_header_bytes   MS_CHANNEL_SLOT_HEADER_BYTES (16): payload offset in a slot
 *       32    8 file_bytes          header_bytes + slot_count * slot_stride
 *       40    8 created_unix_ns     wall clock at creation (diagnostics only)
 *       48   16 reserved0           zero
 *   cache line 1: written by the writer only
 *       64    8 published_seq       (atomic) newest complete message; 0 = none yet. Readers
 *                                   use it to find the latest message (the mailbox) and to
 *                                   bound losses; it survives writer restarts, which is what
 *                                   keeps sequence ids monotonic.
 *       72    8 writer_epoch        (atomic) number of writer attaches so far (1 = creator)
 *       80   48 reserved1           zero
 *   cache lines 2-3: padding, so the adjacent-line prefetcher never pairs line 1 with slot 0
 *      128  128 reserved2           zero
 *
 * Slot i (message with sequence id s lives in slot s & (N - 1)), at header_bytes + i * stride:
 *        0    8 version             (atomic) seqlock word: 0 = never written, 2s - 1 while
 *                                   message s is being written (odd), 2s once it is complete
 *        8    4 length              payload bytes of the message in this slot (<= message_bytes)
 *       12    4 reserved            zero
 *       16    - payload             message_bytes rounded up to 8; bytes past length are
 *                                   unspecified (leftovers of older messages)
 *   slot_stride = round_up(16 + round_up(message_bytes, 8), 64), so every slot starts on its own
 *   cache line and the payload can be copied as aligned 8-byte words.
 *
 * Writer protocol for message s (C++: channel.cc; Python: channel.py):
 *   version = 2s-1 (relaxed); release fence; length and payload words (relaxed);
 *   version = 2s (release); published_seq = s (release).
 * Reader protocol for message s:
 *   while idle, poll published_seq (acquire) until it is >= s: the writer stores that word once
 *   per message, whereas polling the slot itself would pull the slot's cache line away from the
 *   writer between its stores. Then v1 = version (acquire); v1 == 2s, else s is not yet written
 *   (v1 < 2s) or was overwritten (v1 > 2s); copy length and payload words (relaxed); acquire
 *   fence; v2 = version (relaxed); the copy is a complete message s only if v2 == v1. (Polling
 *   the slot's version instead of published_seq is also correct, only slower; channel.py does.)
 * Versions in a slot only grow, so "v1 > 2s" always means "s is gone": that is how a reader counts
 * exactly what it missed. The mailbox is not a second copy: it is the slot that published_seq
 * names. A separate mailbox slot would cost the writer a second payload copy per message, and a
 * reader of it would have to retry whenever the next message arrives, whereas the slot named by
 * published_seq stays valid until the writer has gone N messages further.
 *
 * Crash safety: a writer killed mid-write leaves one slot with an odd version and published_seq
 * at the previous message. Readers never return an odd slot. The next writer rebuilds
 * published_seq from the slots (max of published_seq and every complete version) and reuses the
 * abandoned sequence id for its first message, which rewrites that slot; versions never go down.
 */
#ifndef MODELSWAP_SIDECAR_CLIENT_CHANNEL_LAYOUT_H_
#define MODELSWAP_SIDECAR_CLIENT_CHANNEL_LAYOUT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "MSWPCHAN" read as a little-endian u64: a file starting with it is recognisable in a hexdump. */
#define MS_CHANNEL_MAGIC UINT64_C(0x4E4148435057534D)
#define MS_CHANNEL_LAYOUT_VERSION 1u
#define MS_CHANNEL_HEADER_BYTES 256u
#define MS_CHANNEL_SLOT_HEADER_BYTES 16u
#define MS_CHANNEL_CACHE_LINE 64u
/* Limits keep every size computation far from overflow and files below a few GiB. */
#define MS_CHANNEL_MAX_SLOTS (1u << 20)
#define MS_CHANNEL_MAX_MESSAGE_BYTES (1u << 24)
/* Channel names: [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
#define MS_CHANNEL_MAX_NAME_BYTES 63u

typedef struct ms_channel_header {
  /* cache line 0: immutable */
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_bytes;
  uint32_t slot_count;
  uint32_t message_bytes;
  uint32_t slot_stride;
  uint32_t slot_header_bytes;
  uint64_t file_bytes;
  uint64_t created_unix_ns;
  uint8_t reserved0[16];
  /* cache line 1: writer-owned, hot */
  uint64_t published_seq; /* atomic */
  uint64_t writer_epoch;  /* atomic */
  uint8_t reserved1[48];
  /* cache lines 2-3: padding */
  uint8_t reserved2[128];
} ms_channel_header;

typedef struct ms_channel_slot_header {
  uint64_t version; /* atomic seqlock word */
  uint32_t length;  /* atomic (relaxed), read between the two version loads */
  uint32_t reserved;
  /* payload follows */
} ms_channel_slot_header;

/* Bytes per slot for a given message size; callers check message_bytes <= the maximum first. */
static inline uint32_t ms_channel_slot_stride(uint32_t message_bytes) {
  uint32_t payload = (message_bytes + 7u) & ~7u;
  uint32_t raw = MS_CHANNEL_SLOT_HEADER_BYTES + payload;
  return (raw + MS_CHANNEL_CACHE_LINE - 1u) & ~(MS_CHANNEL_CACHE_LINE - 1u);
}

static inline uint64_t ms_channel_file_bytes(uint32_t slot_count, uint32_t message_bytes) {
  return (uint64_t)MS_CHANNEL_HEADER_BYTES +
         (uint64_t)slot_count * (uint64_t)ms_channel_slot_stride(message_bytes);
}

#ifdef __cplusplus
} /* extern "C" */
#define MS_CHANNEL_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MS_CHANNEL_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, magic) == 0, "magic offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, layout_version) == 8, "version offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, header_bytes) == 12, "header_bytes offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, slot_count) == 16, "slot_count offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, message_bytes) == 20, "message_bytes offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, slot_stride) == 24, "slot_stride offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, slot_header_bytes) == 28, "slot hdr offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, file_bytes) == 32, "file_bytes offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, created_unix_ns) == 40, "created offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, published_seq) == 64,
                         "published_seq must start cache line 1");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, writer_epoch) == 72, "writer_epoch offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_header, reserved2) == 128, "padding offset");
MS_CHANNEL_STATIC_ASSERT(sizeof(ms_channel_header) == MS_CHANNEL_HEADER_BYTES, "header size");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_slot_header, version) == 0, "slot version offset");
MS_CHANNEL_STATIC_ASSERT(offsetof(ms_channel_slot_header, length) == 8, "slot length offset");
MS_CHANNEL_STATIC_ASSERT(sizeof(ms_channel_slot_header) == MS_CHANNEL_SLOT_HEADER_BYTES,
                         "slot header size");

#endif /* MODELSWAP_SIDECAR_CLIENT_CHANNEL_LAYOUT_H_ */
