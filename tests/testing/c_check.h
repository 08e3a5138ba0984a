/* CHECK for the C ABI tests written in C: on a failed condition, prints it with the ABI's last
 * error message and exits non-zero. A test defines MS_LAST_ERROR (its ABI's last-error function)
 * before including this. */
#ifndef MODELSWAP_TESTS_TESTING_C_CHECK_H_
#define MODELSWAP_TESTS_TESTING_C_CHECK_H_

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                           \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, #cond, \
              MS_LAST_ERROR());                                                               \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

#endif /* MODELSWAP_TESTS_TESTING_C_CHECK_H_ */
