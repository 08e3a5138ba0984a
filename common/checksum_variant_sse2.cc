// XXH3 compiled for sse2; chosen at run time by checksum.cc.
#define XXH_VECTOR XXH_SSE2
#define CHECKSUM_VARIANT sse2
#include "common/checksum_variant.inc"
