/* tidepool/alloc.h: where the library gets its memory.
 *
 * Every allocation tidepool makes goes through one process-wide allocator, malloc,
 * realloc and free by default (as libuv's uv_replace_allocator). Where a dependency lets
 * us, its allocations follow the same allocator: OpenSSL's, when tidepool is the first
 * to use OpenSSL in the process (CRYPTO_set_mem_functions refuses once OpenSSL has
 * allocated). libpq and this Debian's hiredis (0.14, before hiredisSetAllocators) keep
 * their own malloc. Out of memory is never fatal: a call that cannot allocate fails with
 * TP_ENOMEM and leaks nothing. */
#ifndef TIDEPOOL_ALLOC_H
#define TIDEPOOL_ALLOC_H

#include <stddef.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* tp_allocator: the three functions and their context. Each must be thread-safe and
 * behave as its C library namesake: malloc and realloc may return NULL (never for a
 * size of 0: the library never asks for 0 bytes), realloc(NULL, n) allocates, free(NULL)
 * does nothing. ud is borrowed and must outlive every use. */
typedef struct tp_allocator {
    void *(*malloc)(void *ud, size_t size);
    void *(*realloc)(void *ud, void *ptr, size_t size);
    void (*free)(void *ud, void *ptr);
    void *ud;
} tp_allocator;

/* tp_set_allocator: routes the library's allocations through a (copied; NULL restores
 * the C library's). Call it before creating any handle: the allocator that made a block
 * must be the one that frees it. Also offers a to OpenSSL (see above).
 * Errors: TP_EINVAL (a function missing), TP_ESTATE (the library holds memory from the
 * allocator in force: some handle or rendered text is still alive). Thread-safe, but
 * must not race with any other tidepool call. */
TP_EXTERN tp_err tp_set_allocator(const tp_allocator *a);

/* tp_free: frees memory the library handed to the caller (rendered metrics text, doctor
 * reports) with the allocator that made it. NULL is a no-op. Thread-safe. */
TP_EXTERN void tp_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
