/* fuzz_http_response.c: libFuzzer target over the HTTP response reader
 * (tp__http_resp_* in src/http/), the code that turns bytes from an untrusted server
 * into framing decisions on a pooled connection.
 *
 * Input: byte 0 chooses the request method, the split pattern, the header cap and
 * whether the body callback stops the transfer; the rest is the server's byte stream.
 * Each piece is fed from its own heap copy (so ASan catches any read past a piece or
 * any pointer kept into it), then end of stream is signalled. Invariants, checked with
 * abort():
 *   - no feed consumes more than it was given, and bytes are left over only once the
 *     message is done; body_bytes never exceeds the input length;
 *   - done implies headers_done and no error; eof succeeds only with done;
 *   - errors are sticky: feeding more returns the same error and consumes nothing, eof
 *     returns it too;
 *   - a completed Content-Length body has exactly content_length bytes;
 *   - header_bytes stays within the cap; stored headers are NUL-terminated at their
 *     recorded lengths; tp__http_resp_header finds the first of each name;
 *   - the outcome does not depend on the split: the same input fed whole must succeed
 *     or fail alike and, when it succeeds, give the same status, body and framing.
 * The same file is linked with replay.c to run the corpus as a ctest test. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/parse.h"

#include "fuzz_check.h"


typedef struct result {
    tp_err rc;
    int status;
    bool done, keep_alive, until_close;
    int64_t content_length, keepalive_timeout_s;
    uint64_t body_bytes;
    size_t used;
} result;

typedef struct body_state {
    bool stop;             /* ask the reader to stop at the first body piece */
    uint64_t seen;         /* bytes handed to the callback */
    unsigned char xor_sum; /* of every body byte (keeps the reads from being elided) */
} body_state;

static int on_body(void *ud, const char *at, size_t len)
{
    body_state *b = ud;
    CHECK(at != NULL || len == 0);
    /* Read every byte: ASan then checks that the piece really covers len bytes. */
    unsigned char x = 0;
    for (size_t i = 0; i < len; i++)
        x ^= (unsigned char)at[i];
    b->xor_sum ^= x;
    b->seen += len;
    return b->stop ? 1 : 0;
}

/* next_piece: the length of the next piece starting at off under split pattern p. */
static size_t next_piece(unsigned p, const uint8_t *in, size_t n, size_t off, uint32_t *rng)
{
    static const size_t fixed[] = {0, 1, 2, 3, 7, 64};
    size_t left = n - off, k;
    if (p < 6) {
        k = fixed[p] == 0 ? left : fixed[p];
    } else if (p == 6) { /* pseudo-random pieces of 1..16 bytes */
        *rng = *rng * 1103515245u + 12345u;
        k = 1 + (*rng >> 16) % 16;
    } else { /* up to and including each LF: line by line */
        const uint8_t *lf = memchr(in + off, '\n', left);
        k = lf != NULL ? (size_t)(lf - (in + off)) + 1 : left;
    }
    return k < left ? k : left;
}

static void check_headers(const tp__http_resp *r)
{
    for (size_t i = 0; i < r->nhdrs && r->hdrs[i].name != NULL; i++) {
        const tp__http_hdr *h = &r->hdrs[i];
        CHECK(strlen(h->name) == h->name_len);
        CHECK(strlen(h->value) == h->value_len);
        const char *first = tp__http_resp_header(r, h->name);
        CHECK(first != NULL);
        for (size_t j = 0; j < i; j++) /* the first of that name is returned */
            if (r->hdrs[j].name_len == h->name_len && strcasecmp(r->hdrs[j].name, h->name) == 0) {
                CHECK(first == r->hdrs[j].value);
                break;
            }
    }
}

static void run(const uint8_t *in, size_t n, const char *method, size_t cap, bool stop,
                unsigned pattern, result *res)
{
    tp__http_resp r;
    body_state b = {stop, 0, 0};
    tp_errinfo ei;
    tp__http_resp_init(&r, method, cap, on_body, &b);
    uint32_t rng = (uint32_t)n * 2654435761u;
    size_t off = 0;
    tp_err rc = TP_OK;
    memset(res, 0, sizeof *res);
    while (off < n) {
        size_t k = next_piece(pattern, in, n, off, &rng), used = 12345;
        char *piece = malloc(k);
        CHECK(piece != NULL);
        memcpy(piece, in + off, k);
        rc = tp__http_resp_feed(&r, piece, k, &used, &ei);
        free(piece);
        CHECK(used <= k);
        res->used += used;
        off += k;
        if (rc != TP_OK) {
            CHECK(rc == TP_EPROTO || rc == TP_ETOOBIG || rc == TP_ECANCELED || rc == TP_ENOMEM);
            CHECK(r.err == rc && ei.code == rc && !r.done);
            break;
        }
        if (used < k)
            CHECK(r.done);
        CHECK(r.header_bytes <= cap);
        CHECK(!r.done || r.headers_done);
    }
    if (rc != TP_OK) {
        /* Sticky: more bytes are refused without being consumed; eof says the same. */
        size_t used = 12345;
        CHECK(tp__http_resp_feed(&r, "HTTP/1.1 200 OK\r\n\r\n", 19, &used, NULL) == rc);
        CHECK(used == 0);
        CHECK(tp__http_resp_eof(&r, &ei) == rc && ei.code == rc);
    } else {
        rc = tp__http_resp_eof(&r, &ei);
        CHECK(rc == TP_OK ? r.done : (r.err == rc && !r.done));
        CHECK(rc == TP_OK || rc == TP_ECONNRESET || rc == TP_EPROTO || rc == TP_ECANCELED);
    }
    CHECK(r.body_bytes <= n);
    CHECK(r.body_bytes == b.seen);
    CHECK(!r.done || (r.headers_done && r.err == TP_OK));
    CHECK(r.header_bytes <= cap);
    if (r.done && r.content_length >= 0 && !r.head && r.status != 204 && r.status != 304)
        CHECK(r.body_bytes == (uint64_t)r.content_length);
    if (r.done)
        CHECK(r.status >= 200 && r.status <= 999);
    check_headers(&r);
    if (r.cl_count > 0 && r.headers_done)
        CHECK(tp__http_resp_header(&r, "content-length") != NULL);

    res->rc = rc;
    res->status = r.status;
    res->done = r.done;
    res->keep_alive = r.keep_alive;
    res->until_close = r.until_close;
    res->content_length = r.content_length;
    res->keepalive_timeout_s = r.keepalive_timeout_s;
    res->body_bytes = r.body_bytes;
    tp__http_resp_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t ctl = data[0];
    const char *method = (ctl & 1) ? "HEAD" : "GET";
    unsigned pattern = (ctl >> 1) & 7;
    bool stop = (ctl & 0x10) != 0;
    size_t cap = (ctl & 0x20) ? 256 : (ctl & 0x40) ? (size_t)64 * 1024 : 8192;
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    result split, whole;
    run(in, n, method, cap, stop, pattern, &split);
    if (pattern == 0)
        return 0;
    run(in, n, method, cap, stop, 0, &whole);
    /* Errors may legitimately differ in kind with the split (a header piece can cross
     * the cap before http-parser reaches a bad byte in it), success may not. */
    CHECK((split.rc == TP_OK) == (whole.rc == TP_OK));
    if (split.rc == TP_OK) {
        CHECK(split.status == whole.status && split.done == whole.done);
        CHECK(split.keep_alive == whole.keep_alive && split.until_close == whole.until_close);
        CHECK(split.content_length == whole.content_length);
        CHECK(split.keepalive_timeout_s == whole.keepalive_timeout_s);
        CHECK(split.body_bytes == whole.body_bytes && split.used == whole.used);
    }
    return 0;
}
