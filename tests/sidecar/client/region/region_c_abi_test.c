/* The region C ABI from a C11 translation unit: proves modelswap_region.h and region_layout.h are
 * valid C, and checks create, commit, re-attach, rollback and each error code. Registered with
 * add_test; argv[1] is a scratch directory. Exits non-zero with a message on the first failed
 * check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/client/region/modelswap_region.h"
#include "sidecar/client/region/region_layout.h"

#define MS_LAST_ERROR ms_region_last_error
#include "tests/testing/c_check.h"

int main(int argc, char** argv) {
  CHECK(argc == 2);
  const char* dir = argv[1];
  const uint64_t bytes = 4 * MS_REGION_DEFAULT_BLOCK_BYTES;
  ms_region* r = NULL;
  ms_region_attach_info info;

  CHECK(ms_region_open(dir, "bad/name", bytes, 0, &r, NULL) == MS_REGION_INVALID_ARGUMENT);
  CHECK(r == NULL);
  CHECK(ms_region_open(dir, "state", 0, 0, &r, NULL) == MS_REGION_INVALID_ARGUMENT);
  CHECK(ms_region_open(dir, "state", bytes, 1000, &r, NULL) == MS_REGION_INVALID_ARGUMENT);
  CHECK(strstr(ms_region_last_error(), "power of two") != NULL);

  CHECK(ms_region_open(dir, "state", bytes, 0, &r, &info) == MS_REGION_OK);
  CHECK(info.created == 1 && info.generation == 0);
  CHECK(ms_region_size(r) == bytes);
  ms_region* second = NULL;
  CHECK(ms_region_open(dir, "state", bytes, 0, &second, NULL) == MS_REGION_FAILED_PRECONDITION);
  CHECK(strstr(ms_region_last_error(), "another live app") != NULL);

  CHECK(ms_region_write(r, 10, "hello", 5) == MS_REGION_OK);
  CHECK(ms_region_mark_dirty(r, MS_REGION_DEFAULT_BLOCK_BYTES, 3) == MS_REGION_OK);
  memcpy((char*)ms_region_data(r) + MS_REGION_DEFAULT_BLOCK_BYTES, "abc", 3);
  CHECK(ms_region_commit(r) == 1);
  CHECK(ms_region_generation(r) == 1);
  CHECK(ms_region_durable_generation(r) == 0); /* no agent here */
  CHECK(ms_region_mark_dirty(r, bytes - 1, 2) == MS_REGION_INVALID_ARGUMENT);
  CHECK(strstr(ms_region_last_error(), "outside") != NULL);
  CHECK(ms_region_write(r, 10, "XXXXX", 5) == MS_REGION_OK); /* never committed */
  ms_region_close(r);
  ms_region_close(NULL);

  CHECK(ms_region_open(dir, "state", bytes + 1, 0, &r, NULL) == MS_REGION_FAILED_PRECONDITION);
  CHECK(strstr(ms_region_last_error(), "size mismatch") != NULL);
  CHECK(ms_region_open(dir, "state", bytes, 0, &r, &info) == MS_REGION_OK);
  CHECK(info.created == 0 && info.generation == 1 && info.rolled_back_blocks == 1);
  CHECK(memcmp((char*)ms_region_data(r) + 10, "hello", 5) == 0);
  CHECK(memcmp((char*)ms_region_data(r) + MS_REGION_DEFAULT_BLOCK_BYTES, "abc", 3) == 0);
  CHECK(ms_region_commit(r) == 2);
  ms_region_close(r);
  puts("region C ABI: all checks passed");
  return 0;
}
