/* base/buf.h: the one growable buffer of the library (buf.c): the HTTP client builds
 * requests and collects bodies in it, the metrics and doctor renderers write text into
 * it. data[len] is always NUL once anything was appended, so text can be printed or
 * searched without a copy.
 *
 * Two ways to use it. Byte appends (tp__buf_append) return TP_ENOMEM when memory runs
 * out and leave what was there intact. Text appends (put, printf, json_str...) return
 * nothing: out of memory is sticky (oom), later appends do nothing, and the renderer
 * checks once at the end (tp__buf_finish) instead of after every append. */
#ifndef TP_BASE_BUF_H
#define TP_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidepool/errors.h"

/* Zero-initialise ({0}) or tp__buf_init() to start empty. */
typedef struct tp__buf {
    char *data;
    size_t len, cap;
    bool oom; /* an append failed for memory: later ones do nothing */
} tp__buf;

void tp__buf_init(tp__buf *b);
/* tp__buf_free: frees the memory and leaves b empty (oom cleared). */
void tp__buf_free(tp__buf *b);
/* tp__buf_reset: len = 0 and oom cleared, the memory kept for the next use. */
void tp__buf_reset(tp__buf *b);
/* tp__buf_reserve: room for n more bytes and the NUL (cap - len > n), for a caller that
 * writes into data + len itself; TP_ENOMEM (oom set) if it cannot. */
tp_err tp__buf_reserve(tp__buf *b, size_t n);
/* tp__buf_append: appends len bytes; TP_ENOMEM (b unchanged, oom set) if it cannot. */
tp_err tp__buf_append(tp__buf *b, const void *data, size_t len);

void tp__buf_put(tp__buf *b, const char *s, size_t n);
void tp__buf_puts(tp__buf *b, const char *s);
void tp__buf_putc(tp__buf *b, char c);
void tp__buf_u64(tp__buf *b, uint64_t v);
void tp__buf_i64(tp__buf *b, int64_t v);
void tp__buf_printf(tp__buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* tp__buf_json_str: appends s as a JSON string, quotes included; control bytes escaped
 * (\n, \r, \t by name, the rest as \u00XX); other bytes pass through as they are. */
void tp__buf_json_str(tp__buf *b, const char *s);
/* tp__buf_finish: hands the NUL-terminated text to *out (its length to *len, if not
 * NULL; the caller frees it with tp__free) and leaves b empty; or, after an
 * out-of-memory, frees it and returns TP_ENOMEM. */
tp_err tp__buf_finish(tp__buf *b, char **out, size_t *len);

#endif
