/* fuzz_http_decode.c: libFuzzer target over the content decoder (tp__decoder_* in
 * src/http/decode.c), the code that turns an untrusted server's compressed body into
 * bytes through zlib, brotli and zstd, under the bounds that stop decompression bombs.
 *
 * Input: byte 0 picks the Content-Encoding list (bits 0-3, from k_lists: single codings,
 * layered ones, and a few invalid lists), the bounds (bits 4-5, from k_bounds) and
 * whether the output callback stops at its third call (bit 6); byte 1 chooses the piece
 * sizes (0: the whole body at once, else pseudo-random pieces of 0 to byte 1 bytes
 * seeded by it); the rest is the encoded body. Each piece is fed from its own heap copy
 * (so ASan catches a read past a piece or a pointer kept into it), then the body is
 * finished. Invariants, checked with abort():
 *   - create fails only with TP_EPROTO, and exactly for the lists that are invalid; it
 *     gives no decoder for an identity-only list;
 *   - feed and finish return only TP_OK, TP_EPROTO, TP_ETOOBIG or TP_ECANCELED (and
 *     TP_ECANCELED only when the callback stopped); TP_ENOMEM never happens here;
 *   - the callback gets pieces of at least one byte, never after an error, and their sum
 *     is tp__decoder_decoded(); encoded bytes never exceed the bytes fed;
 *   - the bounds hold: decoded <= max_out, and decoded <= encoded * max_ratio once past
 *     the 1 MiB floor;
 *   - errors are sticky: a later feed and finish return the same code and message;
 *   - the outcome does not depend on the split or the bounds: the same body fed whole
 *     with the generous reference bounds must fail with TP_EPROTO when this run did, and
 *     succeed with the same output when this run did (unless the reference itself hits
 *     a bound: how much input is consumed when, and so the ratio at each point, depends
 *     on the split).
 * The same file is linked with replay.c to run the corpus as a ctest test. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/decode.h"

#include "fuzz_check.h"


/* The reference run's bounds: generous, but they keep a layered bomb from running for
 * minutes (the ratio bounds what every layer produces, so an inner layer's output that
 * the next one consumes without output is bounded too). Every run's own max_out is at
 * most REF_MAX_OUT and its ratio at most REF_RATIO, so its outcomes stay comparable. */
#define REF_MAX_OUT ((uint64_t)8 << 20)
#define REF_RATIO 1000
#define RATIO_FLOOR ((uint64_t)1 << 20) /* as in decode.c */

static const struct {
    const char *ce;
    int layers; /* -1: invalid (create fails), 0: identity only */
} k_lists[16] = {
    {"gzip", 1},
    {"deflate", 1},
    {"br", 1},
    {"zstd", 1},
    {"x-gzip", 1},
    {"gzip, br", 2},
    {"br, gzip", 2},
    {"deflate, zstd", 2},
    {"gzip, gzip", 2},
    {"zstd, deflate, gzip", 3},
    {"gzip, deflate, br, zstd", 4},
    {"identity", 0},
    {" Identity ,GZIP ", 1},
    {"compress", -1},
    {"gzip, gzip, gzip, gzip, gzip", -1},
    {"br, identity, br", 2},
};

static const struct {
    uint64_t max_out;
    unsigned max_ratio;
} k_bounds[4] = {
    {REF_MAX_OUT, REF_RATIO},
    {64 * 1024, REF_RATIO},
    {REF_MAX_OUT, 10},
    {(uint64_t)1 << 20, 100},
};

typedef struct sink {
    int stop_at; /* return nonzero on this call (1-based); 0: never */
    int calls;
    uint64_t bytes;
    uint64_t hash; /* FNV-1a of every byte, in order */
    bool closed;   /* an error was returned: no call may follow */
} sink;

static int on_out(void *ud, const char *data, size_t len)
{
    sink *s = ud;
    CHECK(!s->closed);
    CHECK(data != NULL && len > 0);
    /* Read every byte: ASan then checks that the piece really covers len bytes. */
    for (size_t i = 0; i < len; i++) {
        s->hash ^= (unsigned char)data[i];
        s->hash *= UINT64_C(0x100000001b3);
    }
    s->bytes += len;
    s->calls++;
    return s->stop_at != 0 && s->calls == s->stop_at;
}

typedef struct outcome {
    tp_err rc;
    uint64_t decoded, encoded, hash;
} outcome;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static bool allowed(tp_err rc)
{
    return rc == TP_OK || rc == TP_EPROTO || rc == TP_ETOOBIG || rc == TP_ECANCELED;
}

/* run: decodes body with ce, in pieces of up to split bytes (0: whole), checking the
 * invariants of every call. */
static outcome run(const char *ce, const uint8_t *body, size_t n, uint64_t max_out,
                   unsigned max_ratio, unsigned split, bool stop)
{
    outcome o = {TP_OK, 0, 0, 0};
    tp__decoder *d = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    CHECK(tp__decoder_create(ce, strlen(ce), max_out, max_ratio, &d, &err) == TP_OK);
    CHECK(d != NULL);
    sink s = {stop ? 3 : 0, 0, 0, UINT64_C(0xcbf29ce484222325), false};
    uint64_t seed = split | UINT64_C(0x9e3779b97f4a7c00);
    size_t at = 0;
    while (o.rc == TP_OK && at < n) {
        size_t k = n - at;
        if (split != 0) {
            size_t want = (size_t)(rng_next(&seed) % (split + 1)); /* 0 to split: empty feeds too */
            k = want < k ? want : k;
        }
        uint8_t *piece = malloc(k ? k : 1);
        CHECK(piece != NULL);
        memcpy(piece, body + at, k);
        o.rc = tp__decoder_feed(d, piece, k, on_out, &s, &err);
        free(piece);
        at += k;
        CHECK(allowed(o.rc));
        CHECK(tp__decoder_encoded(d) <= at);
    }
    if (o.rc == TP_OK)
        o.rc = tp__decoder_finish(d, on_out, &s, &err);
    CHECK(allowed(o.rc));
    CHECK(o.rc != TP_ECANCELED || (stop && s.calls == 3));
    CHECK(o.rc == TP_OK || err.code == o.rc);
    s.closed = o.rc != TP_OK;

    o.decoded = tp__decoder_decoded(d);
    o.encoded = tp__decoder_encoded(d);
    o.hash = s.hash;
    CHECK(o.decoded == s.bytes);
    CHECK(o.encoded <= n);
    if (max_out != 0)
        CHECK(o.decoded <= max_out);
    if (max_ratio != 0 && o.decoded > RATIO_FLOOR)
        CHECK(o.decoded <= o.encoded * max_ratio);

    if (o.rc != TP_OK) {
        /* Sticky: the same code and message, and no more output. */
        tp_errinfo again;
        memset(&again, 0, sizeof again);
        CHECK(tp__decoder_feed(d, body, n, on_out, &s, &again) == o.rc);
        CHECK(strcmp(again.msg, err.msg) == 0);
        CHECK(tp__decoder_finish(d, on_out, &s, NULL) == o.rc);
        CHECK(tp__decoder_decoded(d) == o.decoded);
    } else {
        CHECK(tp__decoder_finish(d, on_out, &s, NULL) == TP_OK); /* again: the same */
    }
    tp__decoder_destroy(d);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned ctl = data[0], split = data[1];
    const uint8_t *body = data + 2;
    size_t n = size - 2;
    const char *ce = k_lists[ctl & 0x0f].ce;
    int layers = k_lists[ctl & 0x0f].layers;
    uint64_t max_out = k_bounds[(ctl >> 4) & 3].max_out;
    unsigned max_ratio = k_bounds[(ctl >> 4) & 3].max_ratio;
    bool stop = (ctl & 0x40) != 0;

    tp__decoder *d = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    tp_err rc = tp__decoder_create(ce, strlen(ce), max_out, max_ratio, &d, &err);
    if (layers < 0) {
        CHECK(rc == TP_EPROTO && d == NULL && err.code == TP_EPROTO);
        return 0;
    }
    CHECK(rc == TP_OK);
    if (layers == 0) {
        CHECK(d == NULL);
        return 0;
    }
    CHECK(d != NULL);
    tp__decoder_destroy(d);

    outcome o = run(ce, body, n, max_out, max_ratio, split, stop);
    if (split == 0 && max_out == REF_MAX_OUT && max_ratio == REF_RATIO && !stop)
        return 0; /* this run was the reference */
    outcome ref = run(ce, body, n, REF_MAX_OUT, REF_RATIO, 0, false);
    if (ref.rc == TP_ETOOBIG)
        return 0;
    if (o.rc == TP_EPROTO)
        CHECK(ref.rc == TP_EPROTO);
    if (o.rc == TP_OK) {
        CHECK(ref.rc == TP_OK);
        CHECK(ref.decoded == o.decoded && ref.hash == o.hash);
    }
    return 0;
}
