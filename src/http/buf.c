/* buf.c: tp__buf, the growable byte buffer the HTTP client builds requests and collects
 * bodies in. It grows by doubling (amortised O(1) appends), checks every size
 * computation for overflow, and keeps one spare byte so that data[len] is always NUL:
 * a buffer holding text can be printed or searched without a copy. */
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define TP__BUF_MIN_CAP 64

void tp__buf_init(tp__buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void tp__buf_free(tp__buf *b)
{
    free(b->data);
    tp__buf_init(b);
}

void tp__buf_reset(tp__buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* grow: makes room for need bytes plus the NUL terminator. On failure the buffer is
 * left exactly as it was (realloc keeps the old block), so callers can report
 * TP_ENOMEM without losing or leaking what was already appended. */
static tp_err grow(tp__buf *b, size_t need)
{
    if (need == SIZE_MAX)
        return TP_ENOMEM; /* no room for the terminator */
    if (need < b->cap)
        return TP_OK;
    size_t cap = b->cap < TP__BUF_MIN_CAP ? TP__BUF_MIN_CAP : b->cap;
    while (cap <= need) {
        if (cap > SIZE_MAX / 2) {
            cap = need + 1; /* doubling would overflow: take exactly what is needed */
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return TP_ENOMEM;
    b->data = p;
    b->cap = cap;
    return TP_OK;
}

tp_err tp__buf_append(tp__buf *b, const void *data, size_t len)
{
    if (len > SIZE_MAX - b->len)
        return TP_ENOMEM;
    tp_err rc = grow(b, b->len + len);
    if (rc != TP_OK)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return TP_OK;
}
