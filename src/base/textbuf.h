/* base/textbuf.h: the growable NUL-terminated string every text renderer of the library
 * writes into (metrics exposition and JSON, doctor's reports), with JSON string
 * escaping. Out of memory is sticky: later appends do nothing and the renderer checks
 * once, at the end (tp__tbuf_finish or the oom flag), instead of after every append. */
#ifndef TP_BASE_TEXTBUF_H
#define TP_BASE_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidepool/errors.h"

/* Zero-initialise ({0}) to start empty. */
typedef struct tp__tbuf {
    char *p;
    size_t len, cap;
    bool oom;
} tp__tbuf;

void tp__tbuf_put(tp__tbuf *b, const char *s, size_t n);
void tp__tbuf_puts(tp__tbuf *b, const char *s);
void tp__tbuf_putc(tp__tbuf *b, char c);
void tp__tbuf_u64(tp__tbuf *b, uint64_t v);
void tp__tbuf_i64(tp__tbuf *b, int64_t v);
void tp__tbuf_printf(tp__tbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* tp__tbuf_json_str: appends s as a JSON string, quotes included; control bytes escaped
 * (\n, \r, \t by name, the rest as \u00XX); other bytes pass through as they are. */
void tp__tbuf_json_str(tp__tbuf *b, const char *s);
/* tp__tbuf_finish: hands the string to *out (its length to *len, if not NULL) and leaves
 * b empty; or, after an out-of-memory, frees it and returns TP_ENOMEM. */
tp_err tp__tbuf_finish(tp__tbuf *b, char **out, size_t *len);
void tp__tbuf_free(tp__tbuf *b);

#endif
