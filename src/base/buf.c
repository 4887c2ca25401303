/* buf.c: the growable buffer of buf.h. Capacity doubles from 64 bytes (amortised O(1)
 * appends, a logarithmic number of reallocations for a report or a scrape of any size);
 * every size computation is checked for overflow; a failed growth leaves the buffer as it
 * was (realloc keeps the old block), so nothing already appended is lost or leaked. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "buf.h"

#define TP__BUF_MIN_CAP 64

void tp__buf_init(tp__buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void tp__buf_free(tp__buf *b)
{
    tp__free(b->data);
    tp__buf_init(b);
}

void tp__buf_reset(tp__buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the NUL; false (and oom set) if it cannot. */
static bool reserve(tp__buf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->cap > b->len && b->cap - b->len > n)
        return true;
    if (n >= SIZE_MAX - b->len) { /* no room for the bytes and the terminator */
        b->oom = true;
        return false;
    }
    size_t need = b->len + n + 1;
    size_t cap = b->cap < TP__BUF_MIN_CAP ? TP__BUF_MIN_CAP : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = tp__realloc(b->data, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

tp_err tp__buf_reserve(tp__buf *b, size_t n)
{
    return reserve(b, n) ? TP_OK : TP_ENOMEM;
}

tp_err tp__buf_append(tp__buf *b, const void *data, size_t len)
{
    if (!reserve(b, len))
        return TP_ENOMEM;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return TP_OK;
}

void tp__buf_put(tp__buf *b, const char *s, size_t n)
{
    (void)tp__buf_append(b, s, n);
}

void tp__buf_puts(tp__buf *b, const char *s)
{
    tp__buf_put(b, s, strlen(s));
}

void tp__buf_putc(tp__buf *b, char c)
{
    tp__buf_put(b, &c, 1);
}

void tp__buf_u64(tp__buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    tp__buf_put(b, tmp, (size_t)n);
}

void tp__buf_i64(tp__buf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    tp__buf_put(b, tmp, (size_t)n);
}

void tp__buf_printf(tp__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tp__buf_json_str(tp__buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    tp__buf_putc(b, '"');
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
        tp__buf_put(b, e, n);
    }
    tp__buf_putc(b, '"');
}

tp_err tp__buf_finish(tp__buf *b, char **out, size_t *len)
{
    if (!reserve(b, 0)) {
        tp__buf_free(b);
        return TP_ENOMEM;
    }
    b->data[b->len] = '\0';
    *out = b->data;
    if (len != NULL)
        *len = b->len;
    tp__buf_init(b);
    return TP_OK;
}
