/* The C ABI from a C11 translation unit: proves modelswap_channel.h and channel_layout.h are
 * valid C, and checks a round trip, loss counts and the error codes. Registered with add_test;
 * argv[1] is a scratch directory. Exits non-zero with a message on the first failed check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/client/channel/channel_layout.h"
#include "sidecar/client/channel/modelswap_channel.h"

#define MS_LAST_ERROR ms_channel_last_error
#include "tests/testing/c_check.h"

int main(int argc, char** argv) {
  CHECK(argc == 2);
  const char* dir = argv[1];
  ms_channel_writer* w = NULL;
  ms_channel_reader* r = NULL;
  CHECK(ms_channel_reader_open(dir, "c-abi", 32, MS_CHANNEL_START_NEXT_PUBLISHED, &r) ==
        MS_CHANNEL_NOT_FOUND);
  CHECK(strstr(ms_channel_last_error(), "c-abi.chan") != NULL);
  CHECK(ms_channel_writer_open(dir, "bad/name", 4, 32, &w) == MS_CHANNEL_INVALID_ARGUMENT);
  CHECK(ms_channel_writer_open(dir, "c-abi", 3, 32, &w) == MS_CHANNEL_INVALID_ARGUMENT);
  CHECK(ms_channel_writer_open(dir, "c-abi", 4, 32, &w) == MS_CHANNEL_OK);
  CHECK(ms_channel_reader_open(dir, "c-abi", 16, MS_CHANNEL_START_NEXT_PUBLISHED, &r) ==
        MS_CHANNEL_FAILED_PRECONDITION);
  CHECK(strstr(ms_channel_last_error(), "message size mismatch") != NULL);
  CHECK(ms_channel_reader_open(dir, "c-abi", 32, MS_CHANNEL_START_NEXT_PUBLISHED, &r) ==
        MS_CHANNEL_OK);
  CHECK(ms_channel_reader_message_bytes(r) == 32);

  char buf[32];
  ms_channel_read_info info;
  CHECK(ms_channel_read_next(r, buf, sizeof buf, &info) == MS_CHANNEL_EMPTY);
  CHECK(ms_channel_read_latest(r, buf, sizeof buf, &info) == MS_CHANNEL_EMPTY);
  char big[33] = {0};
  CHECK(ms_channel_publish(w, big, sizeof big, NULL) == MS_CHANNEL_INVALID_ARGUMENT);
  for (int i = 0; i < 6; ++i) {
    char msg[32];
    uint64_t seq = 0;
    snprintf(msg, sizeof msg, "message %d", i + 1);
    CHECK(ms_channel_publish(w, msg, (uint32_t)strlen(msg) + 1, &seq) == MS_CHANNEL_OK);
    CHECK(seq == (uint64_t)i + 1);
  }
  CHECK(ms_channel_writer_last_published(w) == 6);
  CHECK(ms_channel_read_next(r, buf, 31, &info) == MS_CHANNEL_BUFFER_TOO_SMALL);
  CHECK(ms_channel_read_next(r, buf, sizeof buf, &info) == MS_CHANNEL_OK);
  CHECK(info.seq == 3 && info.missed == 2); /* a ring of 4 keeps 3..6 */
  CHECK(strcmp(buf, "message 3") == 0 && info.length == 10);
  CHECK(ms_channel_read_latest(r, buf, sizeof buf, &info) == MS_CHANNEL_OK);
  CHECK(info.seq == 6 && info.missed == 2 && strcmp(buf, "message 6") == 0);
  CHECK(ms_channel_reader_total_missed(r) == 4);

  ms_channel_writer* second = NULL;
  CHECK(ms_channel_writer_open(dir, "c-abi", 4, 32, &second) == MS_CHANNEL_FAILED_PRECONDITION);
  ms_channel_writer_close(w);
  CHECK(ms_channel_writer_open(dir, "c-abi", 4, 32, &w) == MS_CHANNEL_OK);
  CHECK(ms_channel_writer_last_published(w) == 6);
  ms_channel_writer_close(w);
  ms_channel_reader_close(r);
  ms_channel_writer_close(NULL);
  ms_channel_reader_close(NULL);
  CHECK(sizeof(ms_channel_header) == MS_CHANNEL_HEADER_BYTES);
  printf("c abi ok\n");
  return 0;
}
