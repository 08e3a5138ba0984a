/* A C app built with `pkg-config --cflags --libs modelswap-region` against the installed tree only
 * (tests/packaging/test_install.py): a bad region name is refused with
 * MS_REGION_INVALID_ARGUMENT and a message; a committed state survives a close and reopen. */
#include <stdio.h>
#include <string.h>

#include "sidecar/client/region/modelswap_region.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: region_consumer DIR\n");
    return 2;
  }
  ms_region* region = NULL;
  ms_region_status st = ms_region_open(argv[1], "../escape", 4096, 0, &region, NULL);
  if (st != MS_REGION_INVALID_ARGUMENT || region != NULL || ms_region_last_error()[0] == '\0') {
    fprintf(stderr, "region_consumer: bad name gave %d (%s)\n", (int)st, ms_region_last_error());
    return 1;
  }
  st = ms_region_open(argv[1], "state", 8192, 0, &region, NULL);
  if (st != MS_REGION_OK) {
    fprintf(stderr, "region_consumer: open: %s\n", ms_region_last_error());
    return 1;
  }
  if (ms_region_write(region, 100, "kept", 4) != MS_REGION_OK || ms_region_commit(region) != 1) {
    fprintf(stderr, "region_consumer: write/commit: %s\n", ms_region_last_error());
    return 1;
  }
  ms_region_close(region);
  ms_region_attach_info info;
  region = NULL;
  if (ms_region_open(argv[1], "state", 8192, 0, &region, &info) != MS_REGION_OK ||
      info.generation != 1 || ms_region_size(region) != 8192 ||
      memcmp((const char*)ms_region_data(region) + 100, "kept", 4) != 0) {
    fprintf(stderr, "region_consumer: reopen lost the committed state (%s)\n",
            ms_region_last_error());
    return 1;
  }
  ms_region_close(region);
  puts("region_consumer: ok");
  return 0;
}
