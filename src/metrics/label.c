/* label.c: from a key's bytes to a label value that is safe to publish, and escaping
 * label values for Prometheus (JSON strings: tp__buf_json_str).
 *
 * Two layers: the key-label hook decides what of a key may be shown (the default drops
 * query strings and URL user info, where tokens and passwords live); sanitising then
 * guarantees printable ASCII whatever a custom hook returned, so the output is always
 * valid UTF-8 and a terminal never sees a control byte. */
#include <string.h>

#include "internal.h"

static const char hexdig[] = "0123456789abcdef";

static bool printable(unsigned char c)
{
    return c >= 0x20 && c < 0x7f;
}

/* Where the user info of a URL-like key ends: for "scheme://user@host..." the offset
 * just past the '@', for anything else 0 (nothing to skip). Only an '@' before the first
 * '/' after "://" counts, as in a URL's authority. */
static size_t userinfo_end(const unsigned char *k, size_t n, size_t *start)
{
    for (size_t i = 0; i + 3 <= n; i++) {
        if (k[i] == ':' && k[i + 1] == '/' && k[i + 2] == '/') {
            size_t a = i + 3;
            for (size_t j = a; j < n && k[j] != '/'; j++) {
                if (k[j] == '@') {
                    *start = a;
                    return j + 1;
                }
            }
            return 0;
        }
        if (k[i] == '/') /* a path before any scheme: not a URL */
            return 0;
    }
    return 0;
}

size_t tp_metrics_key_label_default(void *ud, const void *key, size_t keylen, char *out, size_t cap)
{
    (void)ud;
    if (out == NULL || (key == NULL && keylen > 0))
        return 0;
    const unsigned char *k = key;
    const unsigned char *q = keylen > 0 ? memchr(k, '?', keylen) : NULL;
    size_t n = q != NULL ? (size_t)(q - k) : keylen;
    size_t ui_start = 0, ui_end = userinfo_end(k, n, &ui_start);

    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (ui_end > 0 && i >= ui_start && i < ui_end)
            continue;
        if (printable(k[i])) {
            if (w + 1 > cap)
                break;
            out[w++] = (char)k[i];
        } else {
            if (w + 4 > cap)
                break;
            out[w++] = '\\';
            out[w++] = 'x';
            out[w++] = hexdig[k[i] >> 4];
            out[w++] = hexdig[k[i] & 0xf];
        }
    }
    return w;
}

size_t tp__mlabel_sanitize(const char *s, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 4 < TP__MLABEL_CAP; i++) {
        unsigned char c = (unsigned char)s[i];
        if (printable(c)) {
            out[w++] = (char)c;
        } else {
            out[w++] = '\\';
            out[w++] = 'x';
            out[w++] = hexdig[c >> 4];
            out[w++] = hexdig[c & 0xf];
        }
    }
    out[w] = '\0';
    return w;
}

void tp__mesc_prom(tp__buf *b, const char *s)
{
    /* The text format knows exactly three escapes in label values. */
    size_t run = 0;
    for (size_t i = 0;; i++) {
        char c = s[i];
        if (c != '\0' && c != '\\' && c != '"' && c != '\n') {
            run++;
            continue;
        }
        tp__buf_put(b, s + i - run, run);
        run = 0;
        if (c == '\0')
            return;
        tp__buf_puts(b, c == '\\' ? "\\\\" : c == '"' ? "\\\"" : "\\n");
    }
}
