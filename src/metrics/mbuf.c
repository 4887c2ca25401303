/* mbuf.c: the growable string the renderers write into, and exact number formatting.
 * Seconds are printed from integer nanoseconds as exact decimals, never through a
 * double, so a bucket bound reads the same in every scrape and in both formats. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Makes room for n more bytes plus the NUL; false (and oom set) if it cannot. */
static bool reserve(tp__mbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->cap - b->len > n) /* room for n bytes and the NUL */
        return true;
    size_t need = b->len + n + 1;
    if (need < b->len) { /* overflow */
        b->oom = true;
        return false;
    }
    size_t cap = b->cap > 0 ? b->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tp__mbuf_put(tp__mbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tp__mbuf_puts(tp__mbuf *b, const char *s)
{
    tp__mbuf_put(b, s, strlen(s));
}

void tp__mbuf_putc(tp__mbuf *b, char c)
{
    tp__mbuf_put(b, &c, 1);
}

void tp__mbuf_u64(tp__mbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    tp__mbuf_put(b, tmp, (size_t)n);
}

void tp__mbuf_i64(tp__mbuf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    tp__mbuf_put(b, tmp, (size_t)n);
}

size_t tp__mfmt_seconds(uint64_t ns, char out[TP__MSECONDS_CAP])
{
    uint64_t sec = ns / 1000000000u, frac = ns % 1000000000u;
    int n;
    if (frac == 0) {
        n = snprintf(out, TP__MSECONDS_CAP, "%" PRIu64, sec);
    } else {
        n = snprintf(out, TP__MSECONDS_CAP, "%" PRIu64 ".%09" PRIu64, sec, frac);
        while (n > 0 && out[n - 1] == '0')
            n--;
        out[n] = '\0';
    }
    return n > 0 ? (size_t)n : 0;
}

void tp__mbuf_seconds(tp__mbuf *b, uint64_t ns)
{
    char tmp[TP__MSECONDS_CAP];
    tp__mbuf_put(b, tmp, tp__mfmt_seconds(ns, tmp));
}

void tp__mbuf_free(tp__mbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
