/* tests/support/hts_parse.c: see hts_parse.h. */
#include "support/hts_parse.h"

#include <string.h>
#include <strings.h>

/* Case-insensitive: does the comma-separated list v[0..n) contain the token tok? */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, tok, tl) == 0)
            return true;
    }
    return false;
}

/* Parses v[0..n) as a decimal Content-Length; -1 if it is not one. */
static long parse_length(const char *v, size_t n)
{
    long x = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
        if (x > (long)HTS_MAX_BODY_BYTES)
            return -1;
    }
    return x;
}

/* The end of a chunked body starting at buf[p]: 1 with *end set, 0 incomplete, -1 bad. */
static int chunked_end(const char *buf, size_t n, size_t p, size_t *end)
{
    size_t total = 0;
    for (;;) {
        const char *eol = memmem(buf + p, n - p, "\r\n", 2);
        if (eol == NULL)
            return n - p > 1024 ? -1 : 0;
        size_t size = 0, i = p, digits = 0;
        for (; i < (size_t)(eol - buf); i++, digits++) {
            char ch = buf[i];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d < 0)
                break; /* a chunk extension (";...") or whitespace follows */
            size = size * 16 + (size_t)d;
            if (size > HTS_MAX_BODY_BYTES)
                return -1;
        }
        if (digits == 0)
            return -1;
        p = (size_t)(eol - buf) + 2;
        if (size == 0) {
            /* Trailer fields, then the empty line. */
            for (;;) {
                eol = memmem(buf + p, n - p, "\r\n", 2);
                if (eol == NULL)
                    return n - p > HTS_MAX_HEADER_BYTES ? -1 : 0;
                bool empty = (size_t)(eol - buf) == p;
                p = (size_t)(eol - buf) + 2;
                if (empty) {
                    *end = p;
                    return 1;
                }
            }
        }
        total += size;
        if (total > HTS_MAX_BODY_BYTES)
            return -1;
        if (n - p < size + 2)
            return 0;
        if (memcmp(buf + p + size, "\r\n", 2) != 0)
            return -1;
        p += size + 2;
    }
}

int hts_parse_request(const char *buf, size_t n, hts_req *req)
{
    const char *hend = n >= 4 ? memmem(buf, n, "\r\n\r\n", 4) : NULL;
    if (hend == NULL)
        return n > HTS_MAX_HEADER_BYTES ? -1 : 0;
    size_t header_len = (size_t)(hend - buf) + 4;
    if (header_len > HTS_MAX_HEADER_BYTES)
        return -1;

    const char *line_end = memmem(buf, header_len, "\r\n", 2);
    size_t rl = (size_t)(line_end - buf);
    const char *sp = memchr(buf, ' ', rl);
    if (sp == NULL || sp == buf)
        return -1;
    bool http10 = rl >= 8 && memcmp(line_end - 8, "HTTP/1.0", 8) == 0;
    bool conn_close = false, conn_keep = false, chunked = false;
    long length = -1;
    memset(req, 0, sizeof *req);
    req->head = sp - buf == 4 && memcmp(buf, "HEAD", 4) == 0;

    const char *p = line_end + 2;
    while (p < hend + 2) {
        const char *eol = memmem(p, (size_t)(hend + 2 - p), "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            return -1;
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t vl = (size_t)(eol - v);
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (nl == 14 && strncasecmp(p, "content-length", nl) == 0) {
            long x = parse_length(v, vl);
            if (x < 0 || (length >= 0 && x != length))
                return -1; /* bad, or conflicting duplicates */
            length = x;
        } else if (nl == 17 && strncasecmp(p, "transfer-encoding", nl) == 0) {
            chunked = has_token(v, vl, "chunked");
        } else if (nl == 10 && strncasecmp(p, "connection", nl) == 0) {
            conn_close |= has_token(v, vl, "close");
            conn_keep |= has_token(v, vl, "keep-alive");
        }
        p = eol + 2;
    }
    req->close = conn_close || (http10 && !conn_keep);

    if (chunked) {
        if (length >= 0)
            return -1; /* both framings: ambiguous */
        return chunked_end(buf, n, header_len, &req->len);
    }
    size_t body = length > 0 ? (size_t)length : 0;
    if (n - header_len < body)
        return 0;
    req->len = header_len + body;
    return 1;
}
