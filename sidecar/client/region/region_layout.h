/* Shared-memory layout of a modelswap state region: `<shm-dir>/regions/<name>.region`.
 *
 * This is the one definition of the bytes that the app side (region.h) and the snapshot host in
 * the agent (sidecar/snapshot/) share. It is plain C so any language can include or transcribe it.
 *
 * What a region is for. An app keeps state in the region's work image and calls commit() when the
 * state is consistent. The agent copies committed states to disk without ever making the app
 * wait, and restores the newest one into a fresh region when the pod starts. Requirements that
 * shape the layout:
 *   - commit() is wait-free: it never waits for the host or for I/O;
 *   - the host copies exactly one committed state, however often the app commits meanwhile;
 *   - after an app crash, the next attach rolls uncommitted writes back (or finishes a commit the
 *     crash interrupted), so the app always re-attaches to exactly one committed state;
 *   - a commit copies only the blocks the app marked dirty.
 *
 * Design: three images of the state and two version tags per block.
 *   work      the app's writable span (stable address). Blocks the app has not marked dirty since
 *             the last commit equal the newest committed version; dirty blocks may not.
 *   slot 0/1  two committed versions of every block. tags[b][s] is the generation of the commit
 *             that wrote block b into slot s (0 = never written: the block is all zeros, which is
 *             the content of generation 0).
 *   pin_gen   set by the host: the generation it is copying (or last copied). For every block the
 *             app keeps "the newest version with tag <= pin_gen" untouched, and writes new commits
 *             of that block into the other slot (ms_region_write_slot). So the host can read the
 *             state at pin_gen block by block (ms_region_read_slot) while the app goes on
 *             committing: each block the host needs is never overwritten.
 *   in work  tags[b][1] == MS_REGION_TAG_IN_WORK: block b was restored from a snapshot and not
 *             written since. Its committed version (tag tags[b][0]) is in the work image only;
 *             slot 0 was never filled. A restore writes each block once instead of twice (and a
 *             restored region costs 2 S of memory until the app writes to it); the app fills
 *             slot 0 the first time it marks the block dirty (step W1), and the host reads such
 *             a block from the work image under a seqlock-style re-check (host step 3).
 * Cost: a region of S bytes occupies up to 3 S of memory (tmpfs allocates pages on first write,
 * so blocks never written cost nothing) plus 16 bytes of tags and 1 dirty byte per block.
 *
 * File: header (4096 bytes), tags, dirty flags, work image, slot 0 image, slot 1 image; each part
 * starts on a 4 KiB boundary. All integers are little-endian. Fields marked (atomic) are accessed
 * only with aligned atomic loads and stores; the others are written once, before the file is
 * linked into the regions directory, and never change.
 *
 *   offset size field               meaning
 *   ------ ---- ------------------- ---------------------------------------------------------
 *   cache lines 0-1: immutable after creation
 *        0    8 magic               MS_REGION_MAGIC, the bytes "MSWPREGN"
 *        8    4 layout_version      MS_REGION_LAYOUT_VERSION (1)
 *       12    4 header_bytes        MS_REGION_HEADER_BYTES (4096)
 *       16    4 block_bytes         dirty-tracking unit, a power of two in
 *                                   [MS_REGION_MIN_BLOCK_BYTES, MS_REGION_MAX_BLOCK_BYTES]
 *       20    4 reserved0           zero
 *       24    8 region_bytes        size of the app's span, in [1, MS_REGION_MAX_BYTES]
 *       32    8 block_count         ceil(region_bytes / block_bytes)
 *       40    8 tags_offset         header_bytes; block_count * 2 u64 tags (atomic)
 *       48    8 dirty_offset        block_count u8 flags (app-private, atomic u8)
 *       56    8 work_offset         the work image (image_bytes)
 *       64    8 slot_offset[0]      slot 0 image (image_bytes)
 *       72    8 slot_offset[1]      slot 1 image (image_bytes)
 *       80    8 file_bytes          slot_offset[1] + image_bytes
 *       88    8 created_unix_ns     wall clock at creation (diagnostics only)
 *       96   32 reserved1           zero
 *   cache line 2: written by the app only
 *      128    8 committing_gen      (atomic) generation of the newest commit begun
 *      136    8 committed_gen       (atomic) generation of the newest commit completed;
 *                                   committing_gen != committed_gen means a commit is running
 *                                   (or was interrupted by a crash)
 *      144    8 app_attaches        (atomic) app attaches so far
 *      152    8 rollbacks           (atomic) attaches that rolled back uncommitted writes
 *      160    8 rollforwards        (atomic) attaches that finished an interrupted commit
 *      168   24 reserved2           zero
 *   cache line 3: padding, so the adjacent-line prefetcher never pairs line 2 with line 4
 *      192   64 reserved3           zero
 *   cache line 4: written by the host (agent) only
 *      256    8 pin_gen             (atomic) the generation whose blocks the app must keep
 *      264    8 durable_gen         (atomic) newest generation on disk (fsynced); for the app
 *      272    8 restored_gen        (atomic) generation this region was restored from; 0 = none
 *      280   40 reserved4           zero
 *      320 3776 reserved5           zero, to header_bytes
 *
 *   image_bytes = round_up(block_count * block_bytes, 4096); tags_offset = 4096;
 *   dirty_offset = round_up(tags_offset + 16 * block_count, 4096);
 *   work_offset = round_up(dirty_offset + block_count, 4096); slot_offset[0] = work_offset +
 *   image_bytes; slot_offset[1] = slot_offset[0] + image_bytes.
 *
 * App commit of generation g = committed_gen + 1 (single writer, enforced by an exclusive flock on
 * the file that the kernel drops when the app dies however it dies):
 *   1. committing_gen = g (seq_cst)                        -- Dekker pair with host step 2
 *   2. pin = pin_gen (seq_cst)
 *   3. for each dirty block b: s = ms_region_write_slot(tags[b], pin); copy work[b] to slot s;
 *      tags[b][s] = g (release: the copy is visible before the tag); dirty[b] = 0 (release: never
 *      cleared before the tag is stored, so a crash leaves the block marked for step R2)
 *   4. committed_gen = g (release)                         -- pairs with host step 1's acquire
 * App write of block b:
 *   W1. if dirty[b] == 0 and tags[b][1] == MS_REGION_TAG_IN_WORK (relaxed: after the restore only
 *       this app changes tags): copy work[b] to slot 0; tags[b][1] = 0 (release: the copy is
 *       visible before the tag); then a release fence, which orders that tag store before the
 *       app's writes to work[b] as seen by a host that reads work[b] (the seqlock writer's fence).
 *   W2. dirty[b] = 1, then write work[b]. The flag comes first (a compiler barrier orders them; a
 *       crash needs no more, the kernel keeps every store of a killed process). So a dirty block
 *       is never in work: steps 3, R1 and R2 only ever meet real slots.
 * App attach (recovery, holding the flock):
 *   R1. committing_gen == committed_gen: roll back. For each b with dirty[b]: copy the newest slot
 *       (larger tag) into work[b]; dirty[b] = 0.
 *   R2. committing_gen == committed_gen + 1: a crash interrupted the commit. The work image holds
 *       exactly the state being committed (commit runs after the app's writes), so finish it:
 *       redo step 3 for every b with dirty[b] (idempotent: the slot choice is the same again,
 *       since a slot already tagged g is the one above the pin), then step 4.
 * Host snapshot of a region:
 *   1. c = committed_gen (acquire); committing_gen == c (acquire), else a commit is running: try
 *      later. [A commit that began before the host's pin store may use the previous pin.]
 *   2. pin_gen = c (seq_cst); committing_gen (seq_cst) must still be c, else try later. Dekker
 *      with app steps 1-2: if the host saw no new commit begin, every later commit sees pin c.
 *   3. for each b: copy slot ms_region_read_slot(tags[b], c) (tags loaded with acquire, pairing
 *      with app step 3's release); afterwards check the tags did not move (they cannot, unless
 *      the app breaks the protocol: the snapshot is then discarded). A block in work (slot 0
 *      named, tags[b][1] == MS_REGION_TAG_IN_WORK) is copied from work[b], then an acquire fence,
 *      then tags[b][1] is loaded again (acquire): still in work means the copy saw none of the
 *      app's writes (had it seen one, the fence pairing with W1's fence would make the new tag
 *      visible); otherwise the app ran W1, so slot 0 now holds the version: copy that instead.
 *   4. write, fsync, rename; then durable_gen = c (release; the app reads it with acquire).
 * The host never makes the app wait: it only ever stores pin_gen and durable_gen. A host killed
 * mid-snapshot leaves pin_gen set, which costs the app nothing.
 */
#ifndef MODELSWAP_SIDECAR_CLIENT_REGION_LAYOUT_H_
#define MODELSWAP_SIDECAR_CLIENT_REGION_LAYOUT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "MSWPREGN" read as a little-endian u64: recognisable in a hexdump, like the channel magic. */
#define MS_REGION_MAGIC UINT64_C(0x4E4745525057534D)
#define MS_REGION_LAYOUT_VERSION 1u
#define MS_REGION_HEADER_BYTES 4096u
#define MS_REGION_PAGE_BYTES 4096u
#define MS_REGION_MIN_BLOCK_BYTES 512u
#define MS_REGION_MAX_BLOCK_BYTES (1u << 20)
#define MS_REGION_DEFAULT_BLOCK_BYTES 4096u
/* 1 TiB: keeps every size computation far from overflow and block indices within 32 bits. */
#define MS_REGION_MAX_BYTES (UINT64_C(1) << 40)
/* tags[b][1] of a restored block whose committed version is in the work image only. Larger than
 * every generation, so ms_region_read_slot never names slot 1 for it. */
#define MS_REGION_TAG_IN_WORK UINT64_MAX
/* Region names: [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
#define MS_REGION_MAX_NAME_BYTES 63u

typedef struct ms_region_header {
  /* cache lines 0-1: immutable */
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_bytes;
  uint32_t block_bytes;
  uint32_t reserved0;
  uint64_t region_bytes;
  uint64_t block_count;
  uint64_t tags_offset;
  uint64_t dirty_offset;
  uint64_t work_offset;
  uint64_t slot_offset[2];
  uint64_t file_bytes;
  uint64_t created_unix_ns;
  uint8_t reserved1[32];
  /* cache line 2: app-owned */
  uint64_t committing_gen; /* atomic */
  uint64_t committed_gen;  /* atomic */
  uint64_t app_attaches;   /* atomic */
  uint64_t rollbacks;      /* atomic */
  uint64_t rollforwards;   /* atomic */
  uint8_t reserved2[24];
  /* cache line 3: padding */
  uint8_t reserved3[64];
  /* cache line 4: host-owned */
  uint64_t pin_gen;      /* atomic */
  uint64_t durable_gen;  /* atomic */
  uint64_t restored_gen; /* atomic */
  uint8_t reserved4[40];
  uint8_t reserved5[MS_REGION_HEADER_BYTES - 320];
} ms_region_header;

static inline uint64_t ms_region_round_up(uint64_t value, uint64_t align) {
  return (value + align - 1u) / align * align;
}

/* Fills the geometry fields of h for region_bytes and block_bytes (callers check both against
 * the limits first). Leaves every other field alone. */
static inline void ms_region_geometry(ms_region_header* h, uint64_t region_bytes,
                                      uint32_t block_bytes) {
  const uint64_t blocks = (region_bytes + block_bytes - 1u) / block_bytes;
  const uint64_t image = ms_region_round_up(blocks * block_bytes, MS_REGION_PAGE_BYTES);
  h->header_bytes = MS_REGION_HEADER_BYTES;
  h->block_bytes = block_bytes;
  h->region_bytes = region_bytes;
  h->block_count = blocks;
  h->tags_offset = MS_REGION_HEADER_BYTES;
  h->dirty_offset = ms_region_round_up(h->tags_offset + 16u * blocks, MS_REGION_PAGE_BYTES);
  h->work_offset = ms_region_round_up(h->dirty_offset + blocks, MS_REGION_PAGE_BYTES);
  h->slot_offset[0] = h->work_offset + image;
  h->slot_offset[1] = h->slot_offset[0] + image;
  h->file_bytes = h->slot_offset[1] + image;
}

/* The slot holding the version of a block at generation pin: the newest with tag <= pin. Returns
 * -1 if neither qualifies (impossible while the protocol holds: the app keeps that version). */
static inline int ms_region_read_slot(uint64_t tag0, uint64_t tag1, uint64_t pin) {
  if (tag0 <= pin && tag1 <= pin) return tag1 > tag0 ? 1 : 0;
  if (tag0 <= pin) return 0;
  if (tag1 <= pin) return 1;
  return -1;
}

/* The slot a commit writes a block into: never the one ms_region_read_slot(pin) names. */
static inline int ms_region_write_slot(uint64_t tag0, uint64_t tag1, uint64_t pin) {
  return ms_region_read_slot(tag0, tag1, pin) == 0 ? 1 : 0;
}

/* The slot holding the newest committed version (what a rollback restores). Never called for a
 * block in work (W2: such a block is not dirty). */
static inline int ms_region_newest_slot(uint64_t tag0, uint64_t tag1) {
  return tag1 > tag0 ? 1 : 0;
}

#ifdef __cplusplus
} /* extern "C" */
#define MS_REGION_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MS_REGION_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, magic) == 0, "magic offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, layout_version) == 8, "version offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, header_bytes) == 12, "header_bytes offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, block_bytes) == 16, "block_bytes offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, region_bytes) == 24, "region_bytes offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, block_count) == 32, "block_count offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, tags_offset) == 40, "tags_offset offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, dirty_offset) == 48, "dirty_offset offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, work_offset) == 56, "work_offset offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, slot_offset) == 64, "slot_offset offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, file_bytes) == 80, "file_bytes offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, created_unix_ns) == 88, "created offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, committing_gen) == 128,
                        "app-owned fields must start cache line 2");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, committed_gen) == 136, "committed offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, app_attaches) == 144, "attaches offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, rollbacks) == 152, "rollbacks offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, rollforwards) == 160, "rollforwards offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, reserved3) == 192, "padding offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, pin_gen) == 256,
                        "host-owned fields must start cache line 4");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, durable_gen) == 264, "durable offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, restored_gen) == 272, "restored offset");
MS_REGION_STATIC_ASSERT(offsetof(ms_region_header, reserved5) == 320, "reserved5 offset");
MS_REGION_STATIC_ASSERT(sizeof(ms_region_header) == MS_REGION_HEADER_BYTES, "header size");

#endif /* MODELSWAP_SIDECAR_CLIENT_REGION_LAYOUT_H_ */
