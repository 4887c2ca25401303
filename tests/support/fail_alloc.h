/* tests/support/fail_alloc.h: a tp_allocator for out-of-memory tests and leak checks,
 * installed for the whole test process with tp_set_allocator() before any handle.
 *
 * It counts every allocation and keeps a live count (allocations not yet freed), so a
 * test can assert that a pool gave everything back (live == 0 after destroy) without
 * relying on a leak sanitizer. Armed with fail_alloc_arm(), it returns NULL for the Nth
 * allocation from then on (and, if persistent, for every one after it too). Each block
 * carries a header with a magic number, so a free of a pointer the allocator did not
 * hand out, or a double free, is counted in bad_frees instead of corrupting the heap.
 * Thread-safe. */
#ifndef TP_TEST_FAIL_ALLOC_H
#define TP_TEST_FAIL_ALLOC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <tidepool/tidepool.h>

typedef struct fail_alloc {
    tp_allocator a;          /* pass &fa.a to tp_set_allocator() */
    _Atomic int64_t calls;    /* malloc and realloc calls since the last arm */
    _Atomic int64_t live;     /* blocks allocated and not freed */
    _Atomic int64_t live_bytes;
    _Atomic int64_t failures; /* NULLs returned since the last arm */
    _Atomic int64_t bad_frees;
    _Atomic int64_t fail_at;  /* 1-based allocation index to fail; 0: never */
    atomic_bool persistent;   /* also fail every allocation after fail_at */
} fail_alloc;

/* fail_alloc_init: an allocator that never fails. */
void fail_alloc_init(fail_alloc *fa);

/* fail_alloc_arm: restarts the call count; the nth malloc or realloc from now returns
 * NULL (and every later one if persistent). nth 0 disarms. */
void fail_alloc_arm(fail_alloc *fa, int64_t nth, bool persistent);

#endif
