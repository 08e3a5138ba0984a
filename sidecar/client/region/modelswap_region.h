/* C ABI for modelswap state regions (C++ API and guarantees: region.h; layout and commit
 * protocol: region_layout.h). For apps in C, or any language with a C FFI (Python's ctypes).
 *
 * An app opens <shm_dir>/regions/<name>.region (created on first open, size fixed then), keeps
 * its state in ms_region_data(), calls ms_region_mark_dirty() BEFORE changing bytes, and
 * ms_region_commit() when the state is consistent. The agent's snapshot host persists committed
 * states and restores the newest into a new pod's region before the app starts; after a crash the
 * next open finds exactly the last committed state.
 *
 * Every fallible function returns an ms_region_status: MS_REGION_OK (0) or a negative error whose
 * value mirrors a modelswap::Code; the message is ms_region_last_error() on the calling thread.
 * No C++ exception crosses this boundary.
 *
 * Threading: one app process attaches to a region at a time (others get
 * MS_REGION_FAILED_PRECONDITION); a handle is used by one thread at a time.
 * shm_dir may be NULL: then $MODELSWAP_SHM_DIR, else /dev/shm/modelswap.
 */
#ifndef MODELSWAP_SIDECAR_CLIENT_MODELSWAP_REGION_H_
#define MODELSWAP_SIDECAR_CLIENT_MODELSWAP_REGION_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ms_region_status {
  MS_REGION_OK = 0,
  MS_REGION_INVALID_ARGUMENT = -1, /* bad name, size, block size, or range */
  MS_REGION_NOT_FOUND = -2,
  MS_REGION_ALREADY_EXISTS = -3,
  MS_REGION_CORRUPTION = -4, /* not a region file, or a damaged header */
  MS_REGION_IO_ERROR = -5,
  MS_REGION_NOT_SUPPORTED = -6,
  MS_REGION_UNAVAILABLE = -7,
  MS_REGION_FAILED_PRECONDITION = -8, /* size mismatch, or another live app is attached */
  MS_REGION_ABORTED = -9,
  MS_REGION_DEADLINE_EXCEEDED = -10,
  MS_REGION_PERMISSION_DENIED = -11,
  MS_REGION_INTERNAL = -12
} ms_region_status;

typedef struct ms_region ms_region;

/* What the open found and did. */
typedef struct ms_region_attach_info {
  uint64_t generation;         /* committed generation after recovery (0 = never committed) */
  uint64_t restored_gen;       /* generation the agent restored the region from; 0 = none */
  uint64_t rolled_back_blocks; /* blocks whose uncommitted writes were undone */
  uint8_t created;             /* 1 if this open created the region (all zeros) */
  uint8_t rolled_forward;      /* 1 if a commit a crash interrupted was completed */
  uint8_t reserved[6];
} ms_region_attach_info;

/* Creates or attaches (same bytes and block_bytes required; block_bytes 0 = the default 4096).
 * info may be NULL. */
ms_region_status ms_region_open(const char* shm_dir, const char* name, uint64_t bytes,
                                uint32_t block_bytes, ms_region** out, ms_region_attach_info* info);
/* The state: ms_region_size() writable bytes, at a stable address while the handle is open. */
void* ms_region_data(const ms_region* region);
uint64_t ms_region_size(const ms_region* region);
/* Declares that [offset, offset + length) is about to change. */
ms_region_status ms_region_mark_dirty(ms_region* region, uint64_t offset, uint64_t length);
/* mark_dirty + memcpy. */
ms_region_status ms_region_write(ms_region* region, uint64_t offset, const void* data,
                                 uint64_t length);
/* Makes the current content the committed state; returns its generation. Wait-free. */
uint64_t ms_region_commit(ms_region* region);
uint64_t ms_region_generation(const ms_region* region);
/* Newest generation the agent has made durable (an estimate; it advances on its own). */
uint64_t ms_region_durable_generation(const ms_region* region);
/* Detaches (uncommitted writes are rolled back at the next open). NULL is fine. */
void ms_region_close(ms_region* region);
/* After fork(), in the child: drops the child's hold on the region file (its descriptor and its
 * mapping, which would keep the parent's attach lock alive while the child lives, so a restart of
 * a SIGKILLed parent could not attach). The data address stays valid but reads zeros; the handle
 * must not be used or closed afterwards (its small allocation is left). */
void ms_region_abandon_after_fork(ms_region* region);

/* The last error message on this thread ("" if none); valid until the next call on it. */
const char* ms_region_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MODELSWAP_SIDECAR_CLIENT_MODELSWAP_REGION_H_ */
