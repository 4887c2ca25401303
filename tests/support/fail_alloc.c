/* tests/support/fail_alloc.c: see fail_alloc.h. */
#include "support/fail_alloc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define FA_MAGIC_LIVE UINT64_C(0x74696465706f6f6c) /* "tidepool" */
#define FA_MAGIC_DEAD UINT64_C(0xdeadbeefdeadbeef)

/* The header keeps the payload aligned like malloc's. */
typedef union fa_header {
    struct {
        uint64_t magic;
        size_t size;
    } h;
    max_align_t align;
} fa_header;

/* Counts a call; true if the armed failure says this one returns NULL. */
static bool fails_now(fail_alloc *fa)
{
    int64_t n = atomic_fetch_add(&fa->calls, 1) + 1;
    int64_t at = atomic_load(&fa->fail_at);
    if (at != 0 && (n == at || (n > at && atomic_load(&fa->persistent)))) {
        atomic_fetch_add(&fa->failures, 1);
        return true;
    }
    return false;
}

static void *fa_malloc(void *ud, size_t size)
{
    fail_alloc *fa = ud;
    if (fails_now(fa))
        return NULL;
    fa_header *hd = malloc(sizeof *hd + size);
    if (hd == NULL)
        return NULL;
    hd->h.magic = FA_MAGIC_LIVE;
    hd->h.size = size;
    atomic_fetch_add(&fa->live, 1);
    atomic_fetch_add(&fa->live_bytes, (int64_t)size);
    return hd + 1;
}

static void fa_free(void *ud, void *ptr)
{
    fail_alloc *fa = ud;
    if (ptr == NULL)
        return;
    fa_header *hd = (fa_header *)ptr - 1;
    if (hd->h.magic != FA_MAGIC_LIVE) {
        atomic_fetch_add(&fa->bad_frees, 1);
        return;
    }
    hd->h.magic = FA_MAGIC_DEAD;
    atomic_fetch_sub(&fa->live, 1);
    atomic_fetch_sub(&fa->live_bytes, (int64_t)hd->h.size);
    free(hd);
}

static void *fa_realloc(void *ud, void *ptr, size_t size)
{
    fail_alloc *fa = ud;
    if (ptr == NULL)
        return fa_malloc(ud, size);
    fa_header *hd = (fa_header *)ptr - 1;
    if (hd->h.magic != FA_MAGIC_LIVE) {
        atomic_fetch_add(&fa->bad_frees, 1);
        return NULL;
    }
    if (fails_now(fa))
        return NULL; /* the old block stays valid */
    size_t old = hd->h.size;
    fa_header *nh = realloc(hd, sizeof *nh + size);
    if (nh == NULL)
        return NULL;
    nh->h.size = size;
    atomic_fetch_add(&fa->live_bytes, (int64_t)size - (int64_t)old);
    return nh + 1;
}

void fail_alloc_init(fail_alloc *fa)
{
    memset(fa, 0, sizeof *fa);
    fa->a.malloc = fa_malloc;
    fa->a.realloc = fa_realloc;
    fa->a.free = fa_free;
    fa->a.ud = fa;
}

void fail_alloc_arm(fail_alloc *fa, int64_t nth, bool persistent)
{
    atomic_store(&fa->persistent, persistent);
    atomic_store(&fa->calls, 0);
    atomic_store(&fa->failures, 0);
    atomic_store(&fa->fail_at, nth);
}
