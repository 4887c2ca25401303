/* textbuf.c: the growable string of textbuf.h. Capacity doubles from 4 KiB, so a report
 * or a scrape of any size costs a logarithmic number of reallocations. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textbuf.h"

/* Makes room for n more bytes plus the NUL; false (and oom set) if it cannot. */
static bool reserve(tp__tbuf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->cap - b->len > n)
        return true;
    size_t need = b->len + n + 1;
    if (need < b->len) { /* overflow */
        b->oom = true;
        return false;
    }
    size_t cap = b->cap > 0 ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tp__tbuf_put(tp__tbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tp__tbuf_puts(tp__tbuf *b, const char *s)
{
    tp__tbuf_put(b, s, strlen(s));
}

void tp__tbuf_putc(tp__tbuf *b, char c)
{
    tp__tbuf_put(b, &c, 1);
}

void tp__tbuf_u64(tp__tbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    tp__tbuf_put(b, tmp, (size_t)n);
}

void tp__tbuf_i64(tp__tbuf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    tp__tbuf_put(b, tmp, (size_t)n);
}

void tp__tbuf_printf(tp__tbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tp__tbuf_json_str(tp__tbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    tp__tbuf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char e[6] = {'\\', (char)*p, 0, 0, 0, 0};
        size_t n = 2;
        if (*p == '"' || *p == '\\') {
            /* e is already the escape */
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            e[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
        } else if (*p < 0x20) {
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[*p >> 4], e[5] = hex[*p & 0xf];
            n = 6;
        } else {
            e[0] = (char)*p;
            n = 1;
        }
        tp__tbuf_put(b, e, n);
    }
    tp__tbuf_putc(b, '"');
}

tp_err tp__tbuf_finish(tp__tbuf *b, char **out, size_t *len)
{
    if (!reserve(b, 0)) {
        tp__tbuf_free(b);
        return TP_ENOMEM;
    }
    b->p[b->len] = '\0';
    *out = b->p;
    if (len != NULL)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return TP_OK;
}

void tp__tbuf_free(tp__tbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
