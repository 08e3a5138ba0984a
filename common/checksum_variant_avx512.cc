// XXH3 compiled for avx512; chosen at run time by checksum.cc.
#define XXH_VECTOR XXH_AVX512
#define CHECKSUM_VARIANT avx512
#include "common/checksum_variant.inc"
