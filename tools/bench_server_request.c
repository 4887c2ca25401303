/* tools/bench_server_request.c: the built-in benchmark server's reading of a request's
 * header block: its body length, whether the client asked for the connection to close,
 * whether it is a HEAD. Pure text handling, shared by the immediate and the scheduled
 * answers. See bench_server.h for what the server accepts. */
#include "bench_server_internal.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Case-insensitive search for the token tok in v[0..n) (a Connection header value). */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++) {
        if (strncasecmp(v + i, tok, tl) == 0 && (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
            (i + tl == n || v[i + tl] == ' ' || v[i + tl] == ','))
            return true;
    }
    return false;
}

/* Reads the header block h[0..n) (request line to the last header's CRLF). Sets *body to
 * the Content-Length (0 without one), *close and *head. Returns -1 for what we do not
 * serve: a chunked body or a malformed Content-Length. */
int bench_server__scan_headers(const char *h, size_t n, size_t *body, bool *close, bool *head)
{
    const char *end = h + n, *eol = memchr(h, '\n', n);
    bool http10 = eol != NULL && eol - h >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
    bool conn_close = false, conn_keep = false;
    *body = 0;
    *head = n >= 5 && memcmp(h, "HEAD ", 5) == 0;
    for (const char *p = eol != NULL ? eol + 1 : end; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            continue;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl = (size_t)(colon - p), vl = (size_t)(ve - v);
        if (nl == 14 && strncasecmp(p, "content-length", 14) == 0) {
            size_t x = 0;
            if (vl == 0 || vl > 15)
                return -1;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                x = x * 10 + (size_t)(v[i] - '0');
            }
            *body = x;
        } else if (nl == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
            return -1;
        } else if (nl == 10 && strncasecmp(p, "connection", 10) == 0) {
            conn_close |= has_token(v, vl, "close");
            conn_keep |= has_token(v, vl, "keep-alive");
        }
    }
    *close = conn_close || (http10 && !conn_keep);
    return 0;
}
