/* alloc.c: the allocation funnel. Every allocation of the library goes through these
 * functions and so through the one process-wide allocator of tp_set_allocator(); this is
 * the only file of src/ that calls the C library's allocator (scripts/check-src.sh holds
 * the rest to it).
 *
 * The funnel counts the blocks the library holds (tp_set_allocator refuses to switch
 * allocators under them, and the tests check that every scenario gives back what it
 * took) and, for the out-of-memory torture tests, can fail the Nth allocation from a
 * given moment, as curl's test suite does. OpenSSL's allocations, when routed here, are
 * counted but never failed on purpose: failing them would test OpenSSL, not us. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TIDEPOOL_HAVE_OPENSSL
#include <openssl/crypto.h>
#endif

#include "base.h"

static void *libc_malloc(void *ud, size_t size)
{
    (void)ud;
    return malloc(size);
}

static void *libc_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    return realloc(ptr, size);
}

static void libc_free(void *ud, void *ptr)
{
    (void)ud;
    free(ptr);
}

static tp_allocator g_alloc = {libc_malloc, libc_realloc, libc_free, NULL};
static _Atomic int64_t g_live;     /* blocks the library holds from g_alloc */
static _Atomic int64_t g_live_dep; /* blocks OpenSSL holds from it */
static _Atomic int64_t g_count;    /* allocations asked for since the last torture arm */
static _Atomic int64_t g_fail_at;  /* fail allocation number g_fail_at (1-based); 0: none */
static _Atomic int64_t g_failures; /* allocations failed on purpose since the last arm */

/* True if this allocation is the one the torture test wants to fail. */
static bool torture_fails(void)
{
    int64_t n = atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed) + 1;
    int64_t at = atomic_load_explicit(&g_fail_at, memory_order_relaxed);
    if (TP__LIKELY(at == 0) || n != at)
        return false;
    atomic_fetch_add_explicit(&g_failures, 1, memory_order_relaxed);
    return true;
}

/* The allocator's calls, counting the blocks into *live. */
static void *raw_malloc(size_t size, _Atomic int64_t *live)
{
    void *p = g_alloc.malloc(g_alloc.ud, size > 0 ? size : 1);
    if (p != NULL)
        atomic_fetch_add_explicit(live, 1, memory_order_relaxed);
    return p;
}

static void *raw_realloc(void *ptr, size_t size, _Atomic int64_t *live)
{
    void *p = g_alloc.realloc(g_alloc.ud, ptr, size > 0 ? size : 1);
    if (p != NULL && ptr == NULL)
        atomic_fetch_add_explicit(live, 1, memory_order_relaxed);
    return p;
}

static void raw_free(void *ptr, _Atomic int64_t *live)
{
    if (ptr == NULL)
        return;
    /* A custom free must not clobber errno, which error paths may still report. */
    int saved = errno;
    g_alloc.free(g_alloc.ud, ptr);
    errno = saved;
    atomic_fetch_sub_explicit(live, 1, memory_order_relaxed);
}

void *tp__malloc(size_t size)
{
    return torture_fails() ? NULL : raw_malloc(size, &g_live);
}

void *tp__calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = tp__malloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void *tp__realloc(void *ptr, size_t size)
{
    return torture_fails() ? NULL : raw_realloc(ptr, size, &g_live);
}

void tp__free(void *ptr)
{
    raw_free(ptr, &g_live);
}

char *tp__strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = tp__malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *tp__strdup(const char *s)
{
    return tp__strndup(s, SIZE_MAX);
}

char *tp__asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = tp__malloc((size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void tp_free(void *ptr)
{
    tp__free(ptr);
}

/* ---- OpenSSL through the same allocator ------------------------------------------- */

#ifdef TIDEPOOL_HAVE_OPENSSL
static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return raw_malloc(n, &g_live_dep);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return raw_realloc(p, n, &g_live_dep);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    raw_free(p, &g_live_dep);
}

/* Offers the funnel to OpenSSL; it accepts only before its first allocation. Once
 * accepted, the funnel follows later allocator changes by itself. */
static void route_openssl(void)
{
    static bool routed;
    if (!routed)
        routed = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) == 1;
}
#else
static void route_openssl(void)
{
}
#endif

tp_err tp_set_allocator(const tp_allocator *a)
{
    if (a != NULL && (a->malloc == NULL || a->realloc == NULL || a->free == NULL))
        return TP_EINVAL;
    if (atomic_load(&g_live) != 0 || atomic_load(&g_live_dep) != 0)
        return TP_ESTATE;
    if (a != NULL)
        g_alloc = *a;
    else
        g_alloc = (tp_allocator){libc_malloc, libc_realloc, libc_free, NULL};
    route_openssl();
    return TP_OK;
}

/* ---- for the tests -------------------------------------------------------------------- */

void tp__alloc_torture(int64_t fail_at)
{
    atomic_store(&g_fail_at, 0);
    atomic_store(&g_count, 0);
    atomic_store(&g_failures, 0);
    atomic_store(&g_fail_at, fail_at);
}

int64_t tp__alloc_count(void)
{
    return atomic_load(&g_count);
}

int64_t tp__alloc_failures(void)
{
    return atomic_load(&g_failures);
}

int64_t tp__alloc_live(void)
{
    return atomic_load(&g_live);
}
