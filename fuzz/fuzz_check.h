/* fuzz_check.h: what every fuzz target shares: the libFuzzer entry point's declaration
 * and CHECK, an invariant that aborts (so libFuzzer keeps the input) with its text. */
#ifndef TP_FUZZ_CHECK_H
#define TP_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
