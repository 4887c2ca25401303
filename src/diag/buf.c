/* buf.c: the growable string the report renderers write into, with JSON string
 * escaping. Running out of memory is remembered and reported once, at the end, so the
 * renderers need no error check per append. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag_internal.h"

static bool reserve(tp__diag_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t ncap = b->cap ? b->cap : 1024;
    while (ncap < b->len + extra + 1)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (np == NULL) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

void tp__diag_buf_printf(tp__diag_buf *b, const char *fmt, ...)
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

void tp__diag_buf_json_str(tp__diag_buf *b, const char *s)
{
    tp__diag_buf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            tp__diag_buf_printf(b, "\\\"");
            break;
        case '\\':
            tp__diag_buf_printf(b, "\\\\");
            break;
        case '\n':
            tp__diag_buf_printf(b, "\\n");
            break;
        case '\t':
            tp__diag_buf_printf(b, "\\t");
            break;
        default:
            if (*p < 0x20)
                tp__diag_buf_printf(b, "\\u%04x", (unsigned)*p);
            else
                tp__diag_buf_printf(b, "%c", (char)*p);
        }
    }
    tp__diag_buf_printf(b, "\"");
}

tp_err tp__diag_buf_finish(tp__diag_buf *b, char **out, size_t *len)
{
    if (!reserve(b, 0)) {
        free(b->p);
        b->p = NULL;
        return TP_ENOMEM;
    }
    b->p[b->len] = '\0';
    *out = b->p;
    if (len != NULL)
        *len = b->len;
    b->p = NULL;
    return TP_OK;
}
