/* C ABI for modelswap shared-memory channels (C++ API: channel.h; layout: channel_layout.h).
 *
 * Every function returns an ms_channel_status: MS_CHANNEL_OK (0), the non-error outcomes
 * MS_CHANNEL_EMPTY / MS_CHANNEL_BUFFER_TOO_SMALL / MS_CHANNEL_BUSY (> 0), or a negative error whose
 * value mirrors a modelswap::Code (retry advice as in common/status.h). No C++ exception ever
 * crosses this boundary. The message of the last error on the calling thread is
 * ms_channel_last_error().
 *
 * Threading: a handle is used by one thread at a time; open one reader per reading thread.
 * shm_dir may be NULL: then $MODELSWAP_SHM_DIR, else /dev/shm/modelswap.
 */
#ifndef MODELSWAP_SIDECAR_CLIENT_MODELSWAP_CHANNEL_H_
#define MODELSWAP_SIDECAR_CLIENT_MODELSWAP_CHANNEL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ms_channel_status {
  MS_CHANNEL_OK = 0,
  MS_CHANNEL_EMPTY = 1,            /* nothing (new) to read */
  MS_CHANNEL_BUFFER_TOO_SMALL = 2, /* buffer smaller than the channel's message size */
  MS_CHANNEL_BUSY = 3, /* the writer overwrote the message during every try: call again */
  MS_CHANNEL_INVALID_ARGUMENT = -1,
  MS_CHANNEL_NOT_FOUND = -2, /* the channel does not exist (yet) */
  MS_CHANNEL_ALREADY_EXISTS = -3,
  MS_CHANNEL_CORRUPTION = -4, /* not a channel file, or a damaged header */
  MS_CHANNEL_IO_ERROR = -5,
  MS_CHANNEL_NOT_SUPPORTED = -6,
  MS_CHANNEL_UNAVAILABLE = -7,
  MS_CHANNEL_FAILED_PRECONDITION = -8, /* layout/size mismatch, or another live writer */
  MS_CHANNEL_ABORTED = -9,
  MS_CHANNEL_DEADLINE_EXCEEDED = -10,
  MS_CHANNEL_PERMISSION_DENIED = -11,
  MS_CHANNEL_INTERNAL = -12
} ms_channel_status;

typedef enum ms_channel_start {
  MS_CHANNEL_START_NEXT_PUBLISHED = 0,  /* only messages published after open */
  MS_CHANNEL_START_OLDEST_AVAILABLE = 1 /* the oldest message still in the ring */
} ms_channel_start;

typedef struct ms_channel_writer ms_channel_writer;
typedef struct ms_channel_reader ms_channel_reader;

typedef struct ms_channel_read_info {
  uint64_t seq;    /* sequence id of the message returned */
  uint64_t missed; /* messages skipped since the previous one this reader returned (exact) */
  uint32_t length; /* payload bytes written to the buffer */
  uint32_t reserved;
} ms_channel_read_info;

/* Creates <shm_dir>/channels/<name>.chan or attaches to it (same slot_count and message_bytes
 * required) and continues its sequence. slot_count: a power of two. */
ms_channel_status ms_channel_writer_open(const char* shm_dir, const char* name, uint32_t slot_count,
                                         uint32_t message_bytes, ms_channel_writer** out);
/* Publishes len bytes (len <= message_bytes); *seq_out (may be NULL) gets the sequence id.
 * Wait-free. MS_CHANNEL_INVALID_ARGUMENT if the message is too long, MS_CHANNEL_IO_ERROR once
 * the file was truncated under the mapping. */
ms_channel_status ms_channel_publish(ms_channel_writer* writer, const void* data, uint32_t len,
                                     uint64_t* seq_out);
uint64_t ms_channel_writer_last_published(const ms_channel_writer* writer);
void ms_channel_writer_close(ms_channel_writer* writer); /* NULL is fine */

/* Attaches read-only. expected_message_bytes: 0 = any. */
ms_channel_status ms_channel_reader_open(const char* shm_dir, const char* name,
                                         uint32_t expected_message_bytes, ms_channel_start start,
                                         ms_channel_reader** out);
/* The next message (counting any overwritten ones in info->missed), or MS_CHANNEL_EMPTY.
 * Reads: MS_CHANNEL_BUSY after a bounded number of copies the writer overwrote (channel.h,
 * kChannelReadTries); MS_CHANNEL_IO_ERROR once the file was truncated under the mapping
 * (the process survives the SIGBUS; reopen the channel). */
ms_channel_status ms_channel_read_next(ms_channel_reader* reader, void* buf, uint32_t buf_len,
                                       ms_channel_read_info* info);
/* The newest message, or MS_CHANNEL_EMPTY before the first publish (BUSY / IO_ERROR as above). */
ms_channel_status ms_channel_read_latest(ms_channel_reader* reader, void* buf, uint32_t buf_len,
                                         ms_channel_read_info* info);
uint32_t ms_channel_reader_message_bytes(const ms_channel_reader* reader);
uint64_t ms_channel_reader_total_missed(const ms_channel_reader* reader);
void ms_channel_reader_close(ms_channel_reader* reader); /* NULL is fine */

/* The last error message on this thread ("" if none); valid until the next call on it. */
const char* ms_channel_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MODELSWAP_SIDECAR_CLIENT_MODELSWAP_CHANNEL_H_ */
