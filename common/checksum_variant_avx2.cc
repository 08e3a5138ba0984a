// XXH3 compiled for avx2; chosen at run time by checksum.cc.
#define XXH_VECTOR XXH_AVX2
#define CHECKSUM_VARIANT avx2
#include "common/checksum_variant.inc"
