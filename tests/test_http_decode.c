/* test_http_decode.c: the content decoder (src/http/decode.c). Inputs are made here with
 * the encoders of zlib, brotli and zstd. Covers: every coding round-trips random and
 * repetitive data fed in random pieces; layered codings decode in reverse; the
 * Content-Encoding list (identity, case, whitespace, unknown codings, too many layers);
 * corrupt, truncated and trailing bytes; concatenated gzip members and zstd frames; zlib
 * and raw deflate; the zstd window limit; the decompression-bomb bounds (max_ratio on a
 * 1 GiB gzip bomb with flat memory, max_out); the callback stopping; sticky errors; and
 * every allocation failing in turn, without a leak. The process runs on the counting
 * allocator of support/fail_alloc.h, which also measures the memory the decoder holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include "http/decode.h"
#include "support/fail_alloc.h"
#include "support/test_util.h"

static fail_alloc fa;

#define MiB ((size_t)1 << 20)
#define BIG (5 * MiB) /* the round-trip size */

/* ---- data and encoders ------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static unsigned char *gen_random(size_t n, uint64_t seed)
{
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rng_next(&s) >> 24);
    return p;
}

/* Text-like data: repeated lines with a counter, compresses well but not trivially. */
static unsigned char *gen_text(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    size_t at = 0;
    for (unsigned line = 0; at < n; line++) {
        char l[96];
        int w = snprintf(l, sizeof l, "%u: the quick brown fox jumps over the lazy dog %u\n", line,
                         line * 2654435761u % 1000);
        for (int k = 0; k < w && at < n; k++)
            p[at++] = (unsigned char)l[k];
    }
    return p;
}

typedef struct blob {
    unsigned char *p;
    size_t n, cap;
} blob;

static void blob_add(blob *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, data, n);
    b->n += n;
}

/* zlib family: window_bits 16 + 15 gzip, 15 zlib, -15 raw deflate. Appends to out. */
static void enc_zlib_into(blob *out, const unsigned char *in, size_t n, int window_bits, int level)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    unsigned char buf[65536];
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    int rc;
    do {
        z.next_out = buf;
        z.avail_out = sizeof buf;
        rc = deflate(&z, Z_FINISH);
        assert_true(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
        blob_add(out, buf, sizeof buf - z.avail_out);
    } while (rc != Z_STREAM_END);
    deflateEnd(&z);
}

static void enc_br_into(blob *out, const unsigned char *in, size_t n, int quality)
{
    size_t cap = BrotliEncoderMaxCompressedSize(n);
    if (cap == 0)
        cap = n + 1024;
    unsigned char *tmp = malloc(cap);
    assert_non_null(tmp);
    size_t got = cap;
    assert_true(BrotliEncoderCompress(quality, 22, BROTLI_MODE_GENERIC, n, in, &got, tmp));
    blob_add(out, tmp, got);
    free(tmp);
}

/* zstd with a content checksum (so that any corruption is caught, as zstd(1) does). */
static void enc_zstd_into(blob *out, const unsigned char *in, size_t n, int level)
{
    size_t cap = ZSTD_compressBound(n);
    unsigned char *tmp = malloc(cap);
    assert_non_null(tmp);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
    size_t got = ZSTD_compress2(c, tmp, cap, in, n);
    assert_false(ZSTD_isError(got));
    ZSTD_freeCCtx(c);
    blob_add(out, tmp, got);
    free(tmp);
}

/* encode: in encoded with coding (a name of decode.h's list), as a new blob. */
static blob encode(const char *coding, const unsigned char *in, size_t n)
{
    blob b = {0};
    if (strcmp(coding, "gzip") == 0)
        enc_zlib_into(&b, in, n, 16 + 15, 6);
    else if (strcmp(coding, "deflate") == 0)
        enc_zlib_into(&b, in, n, 15, 6);
    else if (strcmp(coding, "raw") == 0)
        enc_zlib_into(&b, in, n, -15, 6);
    else if (strcmp(coding, "br") == 0)
        enc_br_into(&b, in, n, 5);
    else if (strcmp(coding, "zstd") == 0)
        enc_zstd_into(&b, in, n, 3);
    else
        fail_msg("no encoder for %s", coding);
    return b;
}

/* ---- decoding harness -------------------------------------------------------------- */

typedef struct sink {
    blob got;
    bool keep;        /* store the bytes (else only count them) */
    int stop_at_call; /* return nonzero on this call (1-based); 0: never */
    int calls;
    uint64_t bytes;
    int64_t peak_live; /* the most bytes the library held, sampled at each call */
} sink;

static int on_out(void *ud, const char *data, size_t len)
{
    sink *s = ud;
    assert_true(len > 0);
    s->calls++;
    s->bytes += len;
    int64_t live = atomic_load(&fa.live_bytes);
    if (live > s->peak_live)
        s->peak_live = live;
    if (s->keep)
        blob_add(&s->got, data, len);
    return s->stop_at_call != 0 && s->calls == s->stop_at_call;
}

/* Piece sizes: mostly 1 byte to 64 KiB, with a quarter of them 1 to 16 bytes so that
 * headers and block boundaries get split too. seed 0: the whole input at once. */
static size_t next_piece(uint64_t *seed, size_t left)
{
    if (*seed == 0)
        return left;
    uint64_t r = rng_next(seed);
    size_t n = (r & 3) == 0 ? 1 + (size_t)(r >> 8) % 16 : 1 + (size_t)(r >> 8) % 65536;
    return n < left ? n : left;
}

typedef struct run {
    tp_err rc;         /* first error of create, feed or finish */
    const char *where; /* "create", "feed", "finish" */
    tp_errinfo err;
    uint64_t decoded, encoded;
} run;

/* decode: create for ce, feed in (pieces from seed), finish; the output goes to s. */
static run decode(const char *ce, const unsigned char *in, size_t n, uint64_t max_out,
                  unsigned max_ratio, uint64_t seed, sink *s)
{
    run r = {0};
    tp__decoder *d = NULL;
    r.where = "create";
    r.rc = tp__decoder_create(ce, strlen(ce), max_out, max_ratio, &d, &r.err);
    if (r.rc != TP_OK) {
        assert_null(d);
        return r;
    }
    assert_non_null(d);
    r.where = "feed";
    for (size_t at = 0; at < n && r.rc == TP_OK;) {
        size_t k = next_piece(&seed, n - at);
        r.rc = tp__decoder_feed(d, in + at, k, on_out, s, &r.err);
        at += k;
    }
    if (r.rc == TP_OK) {
        r.where = "finish";
        r.rc = tp__decoder_finish(d, on_out, s, &r.err);
    }
    r.decoded = tp__decoder_decoded(d);
    r.encoded = tp__decoder_encoded(d);
    tp__decoder_destroy(d);
    return r;
}

/* expect_roundtrip: ce decodes enc to exactly want, with counters to match. */
static void expect_roundtrip(const char *ce, const blob *enc, const unsigned char *want, size_t n,
                             uint64_t seed)
{
    sink s = {.keep = true};
    run r = decode(ce, enc->p, enc->n, 0, 0, seed, &s);
    if (r.rc != TP_OK)
        fail_msg("%s: %s at %s: %s", ce, tp_err_name(r.rc), r.where, r.err.msg);
    assert_int_equal(s.got.n, n);
    assert_memory_equal(s.got.p, want, n);
    assert_int_equal(r.decoded, n);
    assert_int_equal(r.encoded, enc->n);
    free(s.got.p);
}

/* expect_error: ce on in fails with rc, at where, and the message contains needle. */
static void expect_error(const char *ce, const unsigned char *in, size_t n, uint64_t seed,
                         tp_err rc, const char *where, const char *needle)
{
    sink s = {0};
    run r = decode(ce, in, n, 0, 0, seed, &s);
    if (r.rc != rc || (where != NULL && strcmp(r.where, where) != 0) ||
        strstr(r.err.msg, needle) == NULL)
        fail_msg("%s: got %s at %s (\"%s\"), want %s at %s with \"%s\"", ce, tp_err_name(r.rc),
                 r.where, r.err.msg, tp_err_name(rc), where ? where : "any", needle);
    assert_int_equal(r.err.code, rc);
}

/* ---- round trips ------------------------------------------------------------------- */

static void roundtrip_coding(const char *coding)
{
    unsigned char *rnd = gen_random(BIG, 42);
    unsigned char *txt = gen_text(BIG);
    blob er = encode(coding, rnd, BIG);
    blob et = encode(coding, txt, BIG);
    for (uint64_t seed = 0; seed < 3; seed++) {
        expect_roundtrip(coding, &er, rnd, BIG, seed);
        expect_roundtrip(coding, &et, txt, BIG, seed);
    }
    free(er.p);
    free(et.p);
    free(rnd);
    free(txt);
}

static void test_roundtrip_gzip(void **state)
{
    roundtrip_coding("gzip");
}

static void test_roundtrip_deflate(void **state)
{
    roundtrip_coding("deflate");
}

static void test_roundtrip_br(void **state)
{
    roundtrip_coding("br");
}

static void test_roundtrip_zstd(void **state)
{
    roundtrip_coding("zstd");
}

/* Small inputs, one byte at a time: every header split at every byte. */
static void test_roundtrip_small_bytewise(void **state)
{
    static const char *const k_codings[] = {"gzip", "deflate", "br", "zstd"};
    unsigned char *txt = gen_text(3000);
    for (size_t c = 0; c < 4; c++) {
        for (size_t n = 0; n <= 3000; n += 1000) {
            blob e = encode(k_codings[c], txt, n);
            sink s = {.keep = true};
            tp__decoder *d = NULL;
            assert_int_equal(tp__decoder_create(k_codings[c], strlen(k_codings[c]), 0, 0, &d, NULL),
                             TP_OK);
            for (size_t i = 0; i < e.n; i++)
                assert_int_equal(tp__decoder_feed(d, e.p + i, 1, on_out, &s, NULL), TP_OK);
            assert_int_equal(tp__decoder_feed(d, NULL, 0, on_out, &s, NULL), TP_OK);
            assert_int_equal(tp__decoder_finish(d, on_out, &s, NULL), TP_OK);
            assert_int_equal(s.got.n, n);
            if (n > 0)
                assert_memory_equal(s.got.p, txt, n);
            tp__decoder_destroy(d);
            free(s.got.p);
            free(e.p);
        }
    }
    free(txt);
}

/* "gzip, br": gzip was applied first, so br is undone first. */
static void test_two_layers(void **state)
{
    unsigned char *txt = gen_text(BIG);
    blob g = encode("gzip", txt, BIG);
    blob gb = encode("br", g.p, g.n);
    expect_roundtrip("gzip, br", &gb, txt, BIG, 7);
    /* The other order is a different body: br undoes nothing it recognises. */
    expect_error("br, gzip", gb.p, gb.n, 7, TP_EPROTO, "feed", "gzip");

    tp__decoder *d = NULL;
    assert_int_equal(tp__decoder_create("gzip, br", 8, 0, 0, &d, NULL), TP_OK);
    assert_string_equal(tp__decoder_name(d), "gzip, br");
    tp__decoder_destroy(d);

    /* Four layers, the most allowed. */
    blob z = encode("zstd", gb.p, gb.n);
    blob zd = encode("deflate", z.p, z.n);
    expect_roundtrip("gzip, br, zstd, deflate", &zd, txt, BIG, 3);
    free(zd.p);
    free(z.p);
    free(gb.p);
    free(g.p);
    free(txt);
}

/* ---- Content-Encoding parsing ------------------------------------------------------ */

static void test_identity_gives_null(void **state)
{
    static const char *const k_none[] = {"", "identity", " identity , IDENTITY ", ",,", " \t,"};
    for (size_t i = 0; i < sizeof k_none / sizeof k_none[0]; i++) {
        tp__decoder *d = (tp__decoder *)&fa; /* must be overwritten */
        assert_int_equal(tp__decoder_create(k_none[i], strlen(k_none[i]), 0, 0, &d, NULL), TP_OK);
        assert_null(d);
    }
    tp__decoder *d = (tp__decoder *)&fa;
    assert_int_equal(tp__decoder_create(NULL, 0, 0, 0, &d, NULL), TP_OK);
    assert_null(d);
    tp__decoder_destroy(NULL);
}

static void test_parse_names(void **state)
{
    static const struct {
        const char *ce, *name;
    } k_ok[] = {
        {"gzip", "gzip"},
        {"GZip", "gzip"},
        {"x-gzip", "gzip"},
        {" X-GZIP\t", "gzip"},
        {"Deflate", "deflate"},
        {"BR", "br"},
        {"zstd", "zstd"},
        {"identity, gzip,identity", "gzip"},
        {"gzip,,br", "gzip, br"},
        {"deflate , zstd\t,\tbr , gzip", "deflate, zstd, br, gzip"},
        {"gzip, gzip, gzip, gzip, identity", "gzip, gzip, gzip, gzip"},
    };
    for (size_t i = 0; i < sizeof k_ok / sizeof k_ok[0]; i++) {
        tp__decoder *d = NULL;
        tp_errinfo e = {0};
        assert_int_equal(tp__decoder_create(k_ok[i].ce, strlen(k_ok[i].ce), 0, 0, &d, &e), TP_OK);
        assert_non_null(d);
        assert_string_equal(tp__decoder_name(d), k_ok[i].name);
        assert_int_equal(tp__decoder_decoded(d), 0);
        assert_int_equal(tp__decoder_encoded(d), 0);
        tp__decoder_destroy(d);
    }
    /* Only len bytes count: "gzip" of "gzipXYZ". */
    tp__decoder *d = NULL;
    assert_int_equal(tp__decoder_create("gzipXYZ", 4, 0, 0, &d, NULL), TP_OK);
    assert_string_equal(tp__decoder_name(d), "gzip");
    tp__decoder_destroy(d);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *ce, *needle;
    } k_bad[] = {
        {"compress", "\"compress\""},
        {"gzip, compress", "\"compress\""},
        {"gzip;q=1", "\"gzip;q=1\""},
        {"g zip", "\"g zip\""},
        {"gzip, gzip, gzip, gzip, gzip", "more than 4"},
        {"br, br, zstd, deflate, gzip", "more than 4"},
        {"x-\x01\x7f", "\"x-??\""},
    };
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        tp__decoder *d = (tp__decoder *)&fa;
        tp_errinfo e = {0};
        assert_int_equal(tp__decoder_create(k_bad[i].ce, strlen(k_bad[i].ce), 0, 0, &d, &e),
                         TP_EPROTO);
        assert_null(d);
        assert_int_equal(e.code, TP_EPROTO);
        if (strstr(e.msg, k_bad[i].needle) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", k_bad[i].ce, e.msg, k_bad[i].needle);
    }
    /* Without a tp_errinfo too. */
    tp__decoder *d = NULL;
    assert_int_equal(tp__decoder_create("lzma", 4, 0, 0, &d, NULL), TP_EPROTO);
    assert_null(d);
}

/* ---- broken streams ---------------------------------------------------------------- */

static void test_corrupt_byte(void **state)
{
    static const char *const k_codings[] = {"gzip", "deflate", "br", "zstd"};
    unsigned char *txt = gen_text(MiB);
    for (size_t c = 0; c < 4; c++) {
        blob e = encode(k_codings[c], txt, MiB);
        e.p[e.n / 2] ^= 0x55;
        expect_error(k_codings[c], e.p, e.n, 5, TP_EPROTO, NULL, k_codings[c]);
        free(e.p);
    }
    /* Not a stream of the coding at all. */
    static const char k_junk[] = "<html>this is not compressed</html>";
    for (size_t c = 0; c < 4; c++)
        expect_error(k_codings[c], (const unsigned char *)k_junk, sizeof k_junk - 1, 0, TP_EPROTO,
                     NULL, k_codings[c]);
    free(txt);
}

static void test_truncated(void **state)
{
    static const char *const k_codings[] = {"gzip", "deflate", "br", "zstd"};
    unsigned char *txt = gen_text(200000);
    for (size_t c = 0; c < 4; c++) {
        blob e = encode(k_codings[c], txt, 200000);
        char want[64];
        snprintf(want, sizeof want, "truncated %s stream", k_codings[c]);
        expect_error(k_codings[c], e.p, e.n - 1, 9, TP_EPROTO, "finish", want);
        expect_error(k_codings[c], e.p, e.n / 2, 9, TP_EPROTO, "finish", want);
        expect_error(k_codings[c], e.p, 1, 0, TP_EPROTO, "finish", want);
        free(e.p);
    }
    blob r = encode("raw", txt, 200000);
    expect_error("deflate", r.p, r.n / 2, 9, TP_EPROTO, "finish", "truncated deflate stream");
    free(r.p);
    free(txt);
}

static void test_trailing_garbage(void **state)
{
    static const char *const k_codings[] = {"gzip", "deflate", "br", "zstd"};
    static const struct {
        const char *bytes;
        size_t n;
    } k_tails[] = {
        {"garbage!", 8}, {"\0\0\0\0", 4}, {"x", 1}, {"\x1f", 1}, {"\x1f\x8b", 2}, {"\n", 1},
    };
    unsigned char *txt = gen_text(100000);
    for (size_t c = 0; c < 4; c++) {
        for (size_t t = 0; t < sizeof k_tails / sizeof k_tails[0]; t++) {
            blob e = encode(k_codings[c], txt, 100000);
            blob_add(&e, k_tails[t].bytes, k_tails[t].n);
            sink s = {0};
            for (uint64_t seed = 0; seed < 3; seed++) {
                run r = decode(k_codings[c], e.p, e.n, 0, 0, seed, &s);
                if (r.rc != TP_EPROTO)
                    fail_msg("%s + tail %zu: %s", k_codings[c], t, tp_err_name(r.rc));
                /* A whole tail that cannot start a stream is named as trailing garbage; a
                 * tail too short to judge may read as a truncated next member or frame. */
                if (strstr(r.err.msg, "trailing garbage") == NULL &&
                    strstr(r.err.msg, "truncated") == NULL)
                    fail_msg("%s + tail %zu: \"%s\"", k_codings[c], t, r.err.msg);
                if (strcmp(k_codings[c], "gzip") == 0 || t == 0)
                    if (strstr(r.err.msg, "trailing garbage") == NULL)
                        fail_msg("%s + tail %zu: \"%s\"", k_codings[c], t, r.err.msg);
            }
            free(e.p);
        }
    }
    free(txt);
}

static void test_gzip_trailing_garbage_later_feed(void **state)
{
    unsigned char *txt = gen_text(50000);
    blob e = encode("gzip", txt, 50000);
    tp__decoder *d = NULL;
    sink s = {0};
    tp_errinfo err = {0};
    assert_int_equal(tp__decoder_create("gzip", 4, 0, 0, &d, NULL), TP_OK);
    assert_int_equal(tp__decoder_feed(d, e.p, e.n, on_out, &s, &err), TP_OK);
    assert_int_equal(s.bytes, 50000);
    assert_int_equal(tp__decoder_feed(d, "HTTP/1.1 200 OK\r\n", 17, on_out, &s, &err), TP_EPROTO);
    assert_non_null(strstr(err.msg, "trailing garbage after the end of the gzip stream"));
    tp__decoder_destroy(d);
    free(e.p);
    free(txt);
}

/* ---- several members and frames, both deflate shapes, the zstd window --------------- */

static void test_concatenated(void **state)
{
    unsigned char *txt = gen_text(300000);
    unsigned char *rnd = gen_random(100000, 3);
    blob want = {0};
    blob g = {0}, z = {0};
    /* text, an empty member, random, text again */
    enc_zlib_into(&g, txt, 300000, 16 + 15, 6);
    enc_zlib_into(&g, txt, 0, 16 + 15, 6);
    enc_zlib_into(&g, rnd, 100000, 16 + 15, 1);
    enc_zlib_into(&g, txt, 1000, 16 + 15, 9);
    enc_zstd_into(&z, txt, 300000, 3);
    enc_zstd_into(&z, txt, 0, 3);
    enc_zstd_into(&z, rnd, 100000, 1);
    enc_zstd_into(&z, txt, 1000, 19);
    blob_add(&want, txt, 300000);
    blob_add(&want, rnd, 100000);
    blob_add(&want, txt, 1000);
    for (uint64_t seed = 0; seed < 4; seed++) {
        expect_roundtrip("gzip", &g, want.p, want.n, seed);
        expect_roundtrip("zstd", &z, want.p, want.n, seed);
    }
    /* Cut inside the last member or frame: truncated, and the message says which. */
    expect_error("gzip", g.p, g.n - 3, 2, TP_EPROTO, "finish", "truncated gzip stream (member 4");
    expect_error("zstd", z.p, z.n - 3, 2, TP_EPROTO, "finish", "truncated zstd stream (frame 4");
    free(want.p);
    free(g.p);
    free(z.p);
    free(rnd);
    free(txt);
}

static void test_deflate_zlib_and_raw(void **state)
{
    unsigned char *txt = gen_text(BIG);
    blob zl = encode("deflate", txt, BIG);
    blob raw = encode("raw", txt, BIG);
    assert_int_equal(zl.p[0] & 0x0f, 8); /* the zlib header */
    for (uint64_t seed = 0; seed < 3; seed++) {
        expect_roundtrip("deflate", &zl, txt, BIG, seed);
        expect_roundtrip("deflate", &raw, txt, BIG, seed);
    }
    /* The smallest raw stream: a final empty fixed block. */
    blob empty = {(unsigned char *)"\x03\x00", 2, 0};
    expect_roundtrip("deflate", &empty, txt, 0, 0);
    expect_roundtrip("deflate", &empty, txt, 0, 1);
    /* A zlib stream that needs a preset dictionary: refused. */
    static const unsigned char k_dict[] = {0x78, 0xbb, 0, 0, 0, 1, 0x03, 0x00};
    expect_error("deflate", k_dict, sizeof k_dict, 0, TP_EPROTO, "feed", "dictionary");
    free(zl.p);
    free(raw.p);
    free(txt);
}

/* A zstd frame of unknown size keeps its window: 2^23 passes, 2^24 is refused. */
static void test_zstd_window_limit(void **state)
{
    unsigned char *txt = gen_text(2 * MiB);
    for (int wlog = 23; wlog <= 24; wlog++) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        assert_non_null(c);
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, wlog)));
        /* Streamed, so that the frame header cannot know the size (which would shrink the
         * window to it): everything with ZSTD_e_continue, then the end. */
        blob e = {0};
        unsigned char buf[65536];
        ZSTD_inBuffer ib = {txt, 2 * MiB, 0};
        while (ib.pos < ib.size) {
            ZSTD_outBuffer ob = {buf, sizeof buf, 0};
            assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue)));
            blob_add(&e, buf, ob.pos);
        }
        size_t left;
        do {
            ZSTD_outBuffer ob = {buf, sizeof buf, 0};
            ZSTD_inBuffer none = {NULL, 0, 0};
            left = ZSTD_compressStream2(c, &ob, &none, ZSTD_e_end);
            assert_false(ZSTD_isError(left));
            blob_add(&e, buf, ob.pos);
        } while (left != 0);
        ZSTD_freeCCtx(c);
        if (wlog == 23)
            expect_roundtrip("zstd", &e, txt, 2 * MiB, 1);
        else
            expect_error("zstd", e.p, e.n, 1, TP_EPROTO, "feed", "window above the 8 MiB limit");
        free(e.p);
    }
    free(txt);
}

static void test_empty_body(void **state)
{
    static const char *const k_codings[] = {"gzip", "deflate", "br", "zstd", "gzip, br"};
    for (size_t c = 0; c < sizeof k_codings / sizeof k_codings[0]; c++) {
        tp__decoder *d = NULL;
        sink s = {0};
        assert_int_equal(tp__decoder_create(k_codings[c], strlen(k_codings[c]), 0, 0, &d, NULL),
                         TP_OK);
        assert_int_equal(tp__decoder_feed(d, NULL, 0, on_out, &s, NULL), TP_OK);
        assert_int_equal(tp__decoder_finish(d, on_out, &s, NULL), TP_OK);
        assert_int_equal(tp__decoder_finish(d, on_out, &s, NULL), TP_OK); /* again: same */
        assert_int_equal(s.calls, 0);
        /* The body has ended: more bytes are a caller's mistake. */
        assert_int_equal(tp__decoder_feed(d, "x", 1, on_out, &s, NULL), TP_ESTATE);
        tp__decoder_destroy(d);
    }
    /* An encoded empty input is a stream too. */
    static const char *const k_streams[] = {"gzip", "deflate", "raw", "br", "zstd"};
    for (size_t c = 0; c < 5; c++) {
        blob e = encode(k_streams[c], (const unsigned char *)"", 0);
        expect_roundtrip(strcmp(k_streams[c], "raw") == 0 ? "deflate" : k_streams[c], &e,
                         (const unsigned char *)"", 0, 0);
        free(e.p);
    }
}

/* ---- bounds -------------------------------------------------------------------------- */

/* 1 GiB of zeros, gzip-compressed streaming (about 1 MiB): the bomb. */
static blob g_bomb;
static const uint64_t k_bomb_size = (uint64_t)1 << 30;

static void make_bomb(void)
{
    if (g_bomb.p != NULL)
        return;
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + 15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    static unsigned char zeros[1 << 20];
    unsigned char buf[65536];
    for (uint64_t fed = 0; fed < k_bomb_size; fed += sizeof zeros) {
        bool last = fed + sizeof zeros >= k_bomb_size;
        z.next_in = zeros;
        z.avail_in = sizeof zeros;
        int rc;
        do {
            z.next_out = buf;
            z.avail_out = sizeof buf;
            rc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
            assert_true(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
            blob_add(&g_bomb, buf, sizeof buf - z.avail_out);
        } while (z.avail_out == 0 || (last && rc != Z_STREAM_END));
    }
    deflateEnd(&z);
}

static void test_bomb_ratio(void **state)
{
    make_bomb();
    assert_true(g_bomb.n < 2 * MiB);
    int64_t live0 = atomic_load(&fa.live_bytes);
    sink s = {0};
    run r = decode("gzip", g_bomb.p, g_bomb.n, 0, 100, 11, &s);
    assert_int_equal(r.rc, TP_ETOOBIG);
    assert_string_equal(r.where, "feed");
    assert_non_null(strstr(r.err.msg, "max_decoded_ratio 100"));
    assert_true(r.decoded < 200 * MiB);
    assert_true(r.decoded >= MiB); /* the ratio is only checked past 1 MiB */
    assert_int_equal(s.bytes, r.decoded);
    /* Memory stayed flat: the decoder's struct, its buffer and zlib's state. */
    assert_true(s.peak_live - live0 < 256 * 1024);
    printf("bomb: %zu encoded bytes, stopped after %llu decoded (%llu encoded), peak %lld "
           "bytes held: %s\n",
           g_bomb.n, (unsigned long long)r.decoded, (unsigned long long)r.encoded,
           (long long)(s.peak_live - live0), r.err.msg);

    /* The same bomb as an inner layer (br over gzip): caught on the final output. */
    blob b = encode("br", g_bomb.p, g_bomb.n);
    sink s2 = {0};
    run r2 = decode("gzip, br", b.p, b.n, 0, 100, 11, &s2);
    assert_int_equal(r2.rc, TP_ETOOBIG);
    assert_true(r2.decoded < 200 * MiB);
    free(b.p);

    /* Unbounded, the whole gigabyte comes out with memory still flat. */
    sink s3 = {0};
    run r3 = decode("gzip", g_bomb.p, g_bomb.n, 0, 0, 0, &s3);
    assert_int_equal(r3.rc, TP_OK);
    assert_int_equal(r3.decoded, k_bomb_size);
    assert_true(s3.peak_live - live0 < 256 * 1024);
}

/* A small body with a high ratio passes: the ratio waits for 1 MiB. */
static void test_ratio_small_body_passes(void **state)
{
    unsigned char *zeros = calloc(1, MiB);
    assert_non_null(zeros);
    blob e = encode("gzip", zeros, MiB);
    assert_true(e.n * 100 < MiB);
    expect_roundtrip("gzip", &e, zeros, MiB, 0);
    sink s = {0};
    run r = decode("gzip", e.p, e.n, 0, 100, 0, &s);
    assert_int_equal(r.rc, TP_OK);
    free(e.p);
    free(zeros);
}

static void test_max_out(void **state)
{
    unsigned char *txt = gen_text(100000);
    blob e = encode("br", txt, 100000);
    sink s = {0};
    run r = decode("br", e.p, e.n, 50000, 0, 4, &s);
    assert_int_equal(r.rc, TP_ETOOBIG);
    assert_non_null(strstr(r.err.msg, "max_out 50000"));
    assert_true(r.decoded <= 50000);
    assert_int_equal(s.bytes, r.decoded);
    /* Exactly max_out is allowed. */
    sink s2 = {0};
    run r2 = decode("br", e.p, e.n, 100000, 0, 4, &s2);
    assert_int_equal(r2.rc, TP_OK);
    assert_int_equal(r2.decoded, 100000);
    free(e.p);
    free(txt);
}

/* ---- the callback, sticky errors ---------------------------------------------------- */

static void test_out_stops(void **state)
{
    unsigned char *txt = gen_text(MiB);
    blob e = encode("zstd", txt, MiB);
    tp__decoder *d = NULL;
    sink s = {.stop_at_call = 2};
    tp_errinfo err = {0}, err2 = {0};
    assert_int_equal(tp__decoder_create("zstd", 4, 0, 0, &d, NULL), TP_OK);
    assert_int_equal(tp__decoder_feed(d, e.p, e.n, on_out, &s, &err), TP_ECANCELED);
    assert_int_equal(s.calls, 2);
    assert_int_equal(tp__decoder_decoded(d), s.bytes); /* the stopping piece was delivered */
    /* Sticky: no more calls of out, the same error and message. */
    assert_int_equal(tp__decoder_feed(d, e.p, 10, on_out, &s, &err2), TP_ECANCELED);
    assert_string_equal(err.msg, err2.msg);
    assert_int_equal(tp__decoder_finish(d, on_out, &s, NULL), TP_ECANCELED);
    assert_int_equal(s.calls, 2);
    tp__decoder_destroy(d);
    free(e.p);
    free(txt);
}

static void test_errors_are_sticky(void **state)
{
    unsigned char *txt = gen_text(100000);
    blob e = encode("gzip", txt, 100000);
    tp__decoder *d = NULL;
    sink s = {0};
    tp_errinfo err = {0}, again = {0};
    assert_int_equal(tp__decoder_create("gzip", 4, 0, 0, &d, NULL), TP_OK);
    assert_int_equal(tp__decoder_feed(d, "not gzip", 8, on_out, &s, &err), TP_EPROTO);
    assert_non_null(strstr(err.msg, "corrupt gzip stream"));
    /* Valid bytes now change nothing. */
    assert_int_equal(tp__decoder_feed(d, e.p, e.n, on_out, &s, &again), TP_EPROTO);
    assert_string_equal(err.msg, again.msg);
    assert_int_equal(tp__decoder_feed(d, e.p, e.n, on_out, &s, NULL), TP_EPROTO);
    memset(&again, 0, sizeof again);
    assert_int_equal(tp__decoder_finish(d, on_out, &s, &again), TP_EPROTO);
    assert_string_equal(err.msg, again.msg);
    assert_int_equal(s.calls, 0);
    tp__decoder_destroy(d);

    /* A finish error is sticky too. */
    assert_int_equal(tp__decoder_create("gzip", 4, 0, 0, &d, NULL), TP_OK);
    assert_int_equal(tp__decoder_feed(d, e.p, e.n / 2, on_out, &s, NULL), TP_OK);
    assert_int_equal(tp__decoder_finish(d, on_out, &s, &err), TP_EPROTO);
    assert_int_equal(tp__decoder_feed(d, e.p + e.n / 2, e.n - e.n / 2, on_out, &s, &again),
                     TP_EPROTO);
    assert_string_equal(err.msg, again.msg);
    tp__decoder_destroy(d);

    /* And a bound. */
    s = (sink){0};
    assert_int_equal(tp__decoder_create("gzip", 4, 1000, 0, &d, NULL), TP_OK);
    assert_int_equal(tp__decoder_feed(d, e.p, e.n, on_out, &s, &err), TP_ETOOBIG);
    assert_int_equal(tp__decoder_feed(d, NULL, 0, on_out, &s, &again), TP_ETOOBIG);
    assert_string_equal(err.msg, again.msg);
    assert_int_equal(s.calls, 0);
    tp__decoder_destroy(d);
    free(e.p);
    free(txt);
}

/* ---- out of memory ------------------------------------------------------------------- */

/* Fail the 1st, 2nd, ... allocation until create + feed + finish go through: every
 * failure is TP_ENOMEM, and destroying gives everything back. */
static void test_alloc_failures(void **state)
{
    static const char *const k_lists[] = {"gzip", "deflate",  "br",
                                          "zstd", "gzip, br", "deflate, zstd, gzip"};
    unsigned char *txt = gen_text(400000);
    for (size_t c = 0; c < sizeof k_lists / sizeof k_lists[0]; c++) {
        /* Encode in the order applied: k_lists[c] from left to right. */
        blob cur = {0};
        blob_add(&cur, txt, 400000);
        char list[64];
        snprintf(list, sizeof list, "%s", k_lists[c]);
        for (char *tok = strtok(list, ", "); tok != NULL; tok = strtok(NULL, ", ")) {
            blob next = encode(tok, cur.p, cur.n);
            free(cur.p);
            cur = next;
        }
        bool done = false;
        int64_t nth;
        for (nth = 1; nth < 10000 && !done; nth++) {
            int64_t live0 = atomic_load(&fa.live);
            fail_alloc_arm(&fa, nth, false);
            sink s = {.keep = true};
            run r = decode(k_lists[c], cur.p, cur.n, 0, 0, 1, &s);
            int64_t failures = atomic_load(&fa.failures);
            fail_alloc_arm(&fa, 0, false);
            if (r.rc == TP_OK) {
                assert_int_equal(s.got.n, 400000);
                assert_memory_equal(s.got.p, txt, 400000);
                done = failures == 0;
            } else {
                if (r.rc != TP_ENOMEM)
                    fail_msg("%s, allocation %lld failed: %s at %s (%s)", k_lists[c],
                             (long long)nth, tp_err_name(r.rc), r.where, r.err.msg);
                assert_true(failures > 0);
            }
            assert_int_equal(atomic_load(&fa.live), live0);
            free(s.got.p);
        }
        assert_true(done);
        assert_true(nth > 2); /* at least the struct and a buffer were failed */
        free(cur.p);
    }
    assert_int_equal(atomic_load(&fa.bad_frees), 0);
    free(txt);
}

/* ---- a figure ------------------------------------------------------------------------ */

/* Decode throughput of gzip on 100 MiB of text, printed for the record (not asserted). */
static void test_gzip_throughput(void **state)
{
    size_t n = 100 * MiB;
    unsigned char *txt = gen_text(n);
    blob e = encode("gzip", txt, n);
    free(txt);
    sink s = {0};
    int64_t t0 = tu_now_ns();
    run r = decode("gzip", e.p, e.n, 0, 0, 0, &s);
    double ms = tu_ms_since(t0);
    assert_int_equal(r.rc, TP_OK);
    assert_int_equal(r.decoded, n);
    printf("gzip decode: %zu -> %zu bytes in %.1f ms: %.0f MB/s of output\n", e.n, n, ms,
           (double)n / 1e6 / (ms / 1e3));
    free(e.p);
}

static int teardown_all(void **state)
{
    free(g_bomb.p);
    g_bomb = (blob){0};
    return 0;
}

int main(void)
{
    tu_watchdog(600);
    fail_alloc_init(&fa);
    if (tp_set_allocator(&fa.a) != TP_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_gzip),
        cmocka_unit_test(test_roundtrip_deflate),
        cmocka_unit_test(test_roundtrip_br),
        cmocka_unit_test(test_roundtrip_zstd),
        cmocka_unit_test(test_roundtrip_small_bytewise),
        cmocka_unit_test(test_two_layers),
        cmocka_unit_test(test_identity_gives_null),
        cmocka_unit_test(test_parse_names),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_corrupt_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_gzip_trailing_garbage_later_feed),
        cmocka_unit_test(test_concatenated),
        cmocka_unit_test(test_deflate_zlib_and_raw),
        cmocka_unit_test(test_zstd_window_limit),
        cmocka_unit_test(test_empty_body),
        cmocka_unit_test(test_bomb_ratio),
        cmocka_unit_test(test_ratio_small_body_passes),
        cmocka_unit_test(test_max_out),
        cmocka_unit_test(test_out_stops),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_gzip_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
