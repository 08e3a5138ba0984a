/* C ABI of the modelswap model client (C++ API: client.h; layout: control_block.h).
 *
 *   ms_model* m; ms_handle* h; const void* v; size_t n;
 *   if (ms_model_attach(NULL, "ranker", &m) == MS_OK && ms_acquire(m, &h) == MS_OK) {
 *     if (ms_get(h, "42", 2, &v, &n) == MS_OK) use(v, n);  // points into the mapped file
 *     ms_handle_release(h);
 *   }
 *   ms_model_detach(m);
 *
 * Every function returns an ms_status: MS_OK (0), MS_KEY_NOT_FOUND (> 0, not an error), or a
 * negative error whose value mirrors a modelswap::Code (retry advice as in common/status.h:
 * MS_UNAVAILABLE = retry later, e.g. before the agent has loaded the model). No C++ exception
 * ever crosses this boundary. The message of the last error on the calling thread is
 * ms_last_error().
 *
 * Threading: an ms_model may be used from any number of threads; an ms_handle is immutable and
 * may be read from any thread. A handle stays valid (and pinned to its version) until
 * ms_handle_release, even after ms_model_detach. shm_dir may be NULL: then $MODELSWAP_SHM_DIR,
 * else /dev/shm/modelswap.
 */
#ifndef MODELSWAP_SIDECAR_CLIENT_MODELSWAP_H_
#define MODELSWAP_SIDECAR_CLIENT_MODELSWAP_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ms_status {
  MS_OK = 0,
  MS_KEY_NOT_FOUND = 1, /* ms_get: the version has no such key */
  MS_INVALID_ARGUMENT = -1,
  MS_NOT_FOUND = -2,
  MS_ALREADY_EXISTS = -3,
  MS_CORRUPTION = -4,
  MS_IO_ERROR = -5,
  MS_NOT_SUPPORTED = -6,
  MS_UNAVAILABLE = -7, /* no agent / no active version yet: retry later */
  MS_FAILED_PRECONDITION = -8,
  MS_ABORTED = -9,
  MS_DEADLINE_EXCEEDED = -10,
  MS_PERMISSION_DENIED = -11,
  MS_INTERNAL = -12
} ms_status;

typedef struct ms_model ms_model;
typedef struct ms_handle ms_handle;

/* Attaches to <shm_dir>/<model>.ctl and claims a reader slot (heartbeat thread included). */
ms_status ms_model_attach(const char* shm_dir, const char* model, ms_model** out);
void ms_model_detach(ms_model* model); /* NULL is fine */

/* A handle pinned to the newest active version. */
ms_status ms_acquire(ms_model* model, ms_handle** out);
void ms_handle_release(ms_handle* handle); /* NULL is fine */

/* The value of key in the handle's version: *value points into the mapped file and stays valid
 * until the handle is released. MS_KEY_NOT_FOUND if absent. MS_ABORTED if the version's file was
 * damaged under the mapping (truncated, or a page could not be read): the process survives the
 * SIGBUS that would have killed it, nothing read from a damaged page is returned as a value,
 * and the handle stays damaged: release it and ms_acquire again (MS_UNAVAILABLE until the agent
 * has fallen back to an intact version). Every page of a returned value was intact when ms_get
 * returned; to know the bytes were still intact when you read them later, call
 * ms_handle_damaged after reading (sidecar/client/model/mapping_guard.h). */
ms_status ms_get(const ms_handle* handle, const void* key, size_t key_len, const void** value,
                 size_t* value_len);

/* 1 if the handle's version was damaged under its mapping (ms_get then says MS_ABORTED), else 0
 * (also for NULL). Reads made before this call are covered by its answer. */
int ms_handle_damaged(const ms_handle* handle);

uint64_t ms_handle_generation(const ms_handle* handle);
/* NUL-terminated, valid while the handle lives. */
const char* ms_handle_version(const ms_handle* handle);
/* Layers ms_get reads: 1 for a whole version; for a delta version its chain (the full base and
 * the deltas up to it, at most 8), read newest first, a deleted key being absent. 0 for NULL. */
uint32_t ms_handle_layer_count(const ms_handle* handle);

/* The last error message on this thread ("" if none); valid until the next call on it. */
const char* ms_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MODELSWAP_SIDECAR_CLIENT_MODELSWAP_H_ */
