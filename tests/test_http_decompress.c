/* test_http_decompress.c: decompress against the fixture's nginx, in the blocking call,
 * a streaming read and the engine (with a pausing sink). nginx's own gzip (chunked) and
 * bodies this test encodes with zlib, brotli and zstd that nginx serves with their
 * Content-Encoding (/enc/C/F): each comes back as the original bytes, the coding named in
 * the response's info, fewer bytes on the wire than delivered, the connection reused.
 * Off, or with the caller's own Accept-Encoding, the body arrives as sent. Limits apply
 * to the decoded size: max_body_bytes on a body read in full, max_decoded_ratio against
 * a gzip bomb (also where no size cap applies: a stream). Corrupt data, a gzip stream cut
 * short inside a well-framed body, and a coding we never offered fail with TP_EPROTO, and
 * the next request on the same client is served right. Skipped (77) without the
 * fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

/* /big's content: line k is printf("%015d\n", k). */
static char *big_body(void)
{
    char *b = malloc(NGINX_BIG_SIZE + 1);
    assert_non_null(b);
    for (int k = 0; k < NGINX_BIG_SIZE / 16; k++)
        snprintf(b + (size_t)k * 16, 17, "%015d\n", k);
    return b;
}

static tp_http_client *client(bool decompress, size_t max_body)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.decompress = decompress;
    if (max_body != 0)
        o.max_body_bytes = max_body;
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_OK);
    return c;
}

static void url_of(char *url, size_t cap, const char *path)
{
    snprintf(url, cap, "http://127.0.0.1:%u%s", (unsigned)env.http_port, path);
}

/* ---- encoders (the library links only decoders) ------------------------------------ */

typedef struct blob {
    unsigned char *data;
    size_t len;
} blob;

static blob gzip_of(const void *in, size_t n, int level)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    blob b = {.len = deflateBound(&z, n) + 64};
    b.data = malloc(b.len);
    assert_non_null(b.data);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    z.next_out = b.data;
    z.avail_out = (uInt)b.len;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    b.len = z.total_out;
    deflateEnd(&z);
    return b;
}

/* n zeros, gzipped without holding them: the bomb's encoded form. */
static blob gzip_zeros(size_t n)
{
    static unsigned char zeros[1 << 16];
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    blob b = {.len = n / 512 + 4096};
    b.data = malloc(b.len);
    assert_non_null(b.data);
    z.next_out = b.data;
    z.avail_out = (uInt)b.len;
    for (size_t left = n; left > 0;) {
        size_t k = left < sizeof zeros ? left : sizeof zeros;
        z.next_in = zeros;
        z.avail_in = (uInt)k;
        assert_int_equal(deflate(&z, Z_NO_FLUSH), Z_OK);
        left -= k;
    }
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    b.len = z.total_out;
    deflateEnd(&z);
    return b;
}

static blob br_of(const void *in, size_t n)
{
    blob b = {.len = BrotliEncoderMaxCompressedSize(n)};
    b.data = malloc(b.len);
    assert_non_null(b.data);
    assert_true(
        BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, n, in, &b.len, b.data));
    return b;
}

static blob zstd_of(const void *in, size_t n)
{
    blob b = {.len = ZSTD_compressBound(n)};
    b.data = malloc(b.len);
    assert_non_null(b.data);
    b.len = ZSTD_compress(b.data, b.len, in, n, 3);
    assert_false(ZSTD_isError(b.len));
    return b;
}

/* Writes the encoded file nginx serves as /enc/<coding>/<name>. */
static void serve(const char *coding, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/www/enc/%s/%s", env.dir, coding, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- the three ways to read a response --------------------------------------------- */

/* ENGINE reads the body in full; SINK streams it to on_body. */
typedef enum way { BLOCKING, STREAMED, ENGINE, SINK } way;

typedef struct result {
    tp_err rc;
    int status;
    char *body;
    size_t len;
    tp_http_response_info info;
    char encoding[32];
    char msg[256];
    int pauses;
} result;

static void take(result *out, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    out->rc = rc;
    if (rc != TP_OK) {
        snprintf(out->msg, sizeof out->msg, "%s", err != NULL ? err->msg : "");
        return;
    }
    out->status = tp_http_response_status(r);
    tp_http_response_get_info(r, &out->info);
    snprintf(out->encoding, sizeof out->encoding, "%s",
             out->info.content_encoding != NULL ? out->info.content_encoding : "");
    out->info.content_encoding = NULL; /* freed with the response */
}

static void append(result *out, const char *data, size_t len)
{
    out->body = realloc(out->body, out->len + len + 1);
    assert_non_null(out->body);
    memcpy(out->body + out->len, data, len);
    out->len += len;
    out->body[out->len] = '\0';
}

typedef struct eng_ctx {
    result *res;
    tp_http_engine *e;
    uint64_t id;
    bool done;
    bool streamed;   /* on_body gets the body */
    bool pause_each; /* pause after every chunk, resume from the loop */
    bool paused;
} eng_ctx;

static int sink(void *ud, const char *data, size_t len)
{
    eng_ctx *x = ud;
    append(x->res, data, len);
    if (x->pause_each) {
        x->paused = true;
        x->res->pauses++;
        return TP_HTTP_PAUSE;
    }
    return 0;
}

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    eng_ctx *x = ud;
    x->done = true;
    take(x->res, rc, r, err);
    if (rc == TP_OK && !x->streamed) {
        size_t n = 0;
        const char *b = tp_http_response_body(r, &n);
        append(x->res, b, n);
    }
    tp_http_response_free(r);
}

static result fetch(tp_http_client *c, way w, const char *path, const char *accept, bool pause)
{
    char url[256];
    url_of(url, sizeof url, path);
    const char *names[] = {"Accept-Encoding"}, *values[] = {accept};
    tp_http_request req = {.url = url,
                           .timeout = 20 * TP_NSEC_PER_SEC,
                           .header_names = names,
                           .header_values = values,
                           .nheaders = accept != NULL ? 1 : 0};
    result res = {0};
    tp_errinfo err = {0};
    tp_http_response *r = NULL;
    if (w == BLOCKING) {
        tp_err rc = tp_http_client_do(c, &req, &r, &err);
        take(&res, rc, r, &err);
        if (rc == TP_OK) {
            size_t n = 0;
            const char *b = tp_http_response_body(r, &n);
            append(&res, b, n);
        }
        tp_http_response_free(r);
        return res;
    }
    if (w == STREAMED) {
        req.flags = TP_HTTP_STREAM;
        tp_err rc = tp_http_client_do(c, &req, &r, &err);
        if (rc == TP_OK) {
            char buf[1000]; /* small and odd: pieces never line up with the codec's */
            size_t got = 0;
            while ((rc = tp_http_response_read(r, buf, sizeof buf, &got, &err)) == TP_OK && got > 0)
                append(&res, buf, got);
        }
        take(&res, rc, r, &err);
        tp_http_response_free(r);
        return res;
    }
    eng_ctx x = {.res = &res, .streamed = w == SINK, .pause_each = pause};
    if (w == SINK) {
        req.on_body = sink;
        req.on_body_ud = &x;
    }
    assert_int_equal(tp_http_engine_create(c, &x.e, &err), TP_OK);
    assert_int_equal(tp_http_engine_submit(x.e, &req, on_done, &x, &x.id, &err), TP_OK);
    while (!x.done) {
        tp_http_engine_poll(x.e, 50 * TP_NSEC_PER_MSEC);
        if (x.paused) {
            x.paused = false;
            assert_int_equal(tp_http_engine_resume(x.e, x.id), TP_OK);
        }
    }
    tp_http_engine_destroy(x.e);
    return res;
}

/* The next request on c is served right: no byte of a failed body is left behind. */
static void next_is_clean(tp_http_client *c, way w)
{
    result r = fetch(c, w, "/", NULL, false);
    assert_int_equal(r.rc, TP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen(NGINX_BODY));
    assert_memory_equal(r.body, NGINX_BODY, r.len);
    free(r.body);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_nginx_gzip(void **state)
{
    (void)state;
    char *big = big_body();
    tp_http_client *c = client(true, 0);
    for (way w = BLOCKING; w <= SINK; w++)
        for (int round = 0; round < 2; round++) {
            result r = fetch(c, w, "/gz", NULL, round == 1 && w == SINK);
            assert_int_equal(r.rc, TP_OK);
            assert_int_equal(r.status, 200);
            assert_string_equal(r.encoding, "gzip");
            assert_int_equal(r.len, NGINX_BIG_SIZE);
            assert_memory_equal(r.body, big, NGINX_BIG_SIZE);
            assert_int_equal(r.info.body_bytes, NGINX_BIG_SIZE);
            assert_true(r.info.wire_body_bytes > 0);
            assert_true(r.info.wire_body_bytes < NGINX_BIG_SIZE / 2);
            if (round == 1)
                assert_true(r.info.reused); /* the decoded response kept its connection */
            if (w == SINK && round == 1)
                assert_true(r.pauses > 10);
            printf("way %d: %llu bytes on the wire for %llu delivered\n", (int)w,
                   (unsigned long long)r.info.wire_body_bytes,
                   (unsigned long long)r.info.body_bytes);
            free(r.body);
        }
    /* HEAD: the coding is named, no body comes, nothing to decode. */
    char url[256];
    url_of(url, sizeof url, "/gz");
    tp_http_request head = {.method = "HEAD", .url = url, .timeout = 5 * TP_NSEC_PER_SEC};
    tp_http_response *r = NULL;
    tp_errinfo err;
    assert_int_equal(tp_http_client_do(c, &head, &r, &err), TP_OK);
    assert_string_equal(tp_http_response_header(r, "Content-Encoding"), "gzip");
    size_t n = 1;
    tp_http_response_body(r, &n);
    assert_int_equal(n, 0);
    tp_http_response_free(r);
    next_is_clean(c, BLOCKING);
    tp_http_client_destroy(c);
    free(big);
}

static void test_off_or_callers_own_gets_the_body_as_sent(void **state)
{
    (void)state;
    char *big = big_body();
    tp_http_client *off = client(false, 0);
    tp_http_client *on = client(true, 0);
    for (way w = BLOCKING; w <= SINK; w++) {
        /* Off: no Accept-Encoding goes out, so nginx sends /big as it is. */
        result r = fetch(off, w, "/gz", NULL, false);
        assert_int_equal(r.rc, TP_OK);
        assert_string_equal(r.encoding, "");
        assert_int_equal(r.len, NGINX_BIG_SIZE);
        assert_memory_equal(r.body, big, NGINX_BIG_SIZE);
        assert_int_equal(r.info.wire_body_bytes, r.info.body_bytes);
        free(r.body);
        /* The caller's own Accept-Encoding: the gzip bytes, untouched. */
        r = fetch(on, w, "/gz", "gzip", false);
        assert_int_equal(r.rc, TP_OK);
        assert_string_equal(r.encoding, "");
        assert_true(r.len > 2 && r.len < NGINX_BIG_SIZE / 2);
        assert_int_equal((unsigned char)r.body[0], 0x1f);
        assert_int_equal((unsigned char)r.body[1], 0x8b);
        assert_int_equal(r.info.wire_body_bytes, r.len);
        free(r.body);
    }
    tp_http_client_destroy(off);
    tp_http_client_destroy(on);
    free(big);
}

static void test_br_zstd_and_layers(void **state)
{
    (void)state;
    char *big = big_body();
    blob br = br_of(big, NGINX_BIG_SIZE);
    blob zs = zstd_of(big, NGINX_BIG_SIZE);
    blob gz = gzip_of(big, NGINX_BIG_SIZE, 6);
    blob gz_br = br_of(gz.data, gz.len); /* gzip applied first, then br */
    serve("br", "big", br.data, br.len);
    serve("zstd", "big", zs.data, zs.len);
    serve("gzip-br", "big", gz_br.data, gz_br.len);
    const struct {
        const char *path, *name;
        size_t wire;
    } cases[] = {{"/enc/br/big", "br", br.len},
                 {"/enc/zstd/big", "zstd", zs.len},
                 {"/enc/gzip-br/big", "gzip, br", gz_br.len}};
    tp_http_client *c = client(true, 0);
    for (way w = BLOCKING; w <= SINK; w++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            result r = fetch(c, w, cases[i].path, NULL, false);
            assert_int_equal(r.rc, TP_OK);
            assert_int_equal(r.status, 200);
            assert_string_equal(r.encoding, cases[i].name);
            assert_int_equal(r.len, NGINX_BIG_SIZE);
            assert_memory_equal(r.body, big, NGINX_BIG_SIZE);
            assert_int_equal(r.info.wire_body_bytes, cases[i].wire);
            assert_int_equal(r.info.content_length, (int64_t)cases[i].wire);
            free(r.body);
        }
    tp_http_client_destroy(c);
    free(br.data);
    free(zs.data);
    free(gz.data);
    free(gz_br.data);
    free(big);
}

static void test_bomb_stopped_by_ratio(void **state)
{
    (void)state;
    /* 256 MiB of zeros in about 256 KiB: a ratio near 1000, far past the default 200. */
    blob bomb = gzip_zeros(256u << 20);
    printf("bomb: %zu bytes of gzip\n", bomb.len);
    serve("gzip", "bomb", bomb.data, bomb.len);
    tp_http_client *c = client(true, 0);
    for (way w = BLOCKING; w <= SINK; w++) {
        int64_t t0 = tp_clock_now();
        result r = fetch(c, w, "/enc/gzip/bomb", NULL, false);
        int64_t ms = (tp_clock_now() - t0) / TP_NSEC_PER_MSEC;
        assert_int_equal(r.rc, TP_ETOOBIG);
        assert_non_null(strstr(r.msg, "max_decoded_ratio 200"));
        /* Stopped early: what reached the caller is a few MiB at most, not 256. */
        assert_true(r.len < (8u << 20));
        printf("way %d: stopped in %lld ms after %zu delivered: %s\n", (int)w, (long long)ms, r.len,
               r.msg);
        free(r.body);
        next_is_clean(c, w);
    }
    tp_http_client_destroy(c);
    free(bomb.data);
}

static void test_decoded_size_is_capped(void **state)
{
    (void)state;
    /* /gz is about 200 KiB on the wire and 1 MiB decoded: the cap sees the 1 MiB. */
    tp_http_client *c = client(true, 512 * 1024);
    result r = fetch(c, BLOCKING, "/gz", NULL, false);
    assert_int_equal(r.rc, TP_ETOOBIG);
    assert_non_null(strstr(r.msg, "max_body_bytes"));
    free(r.body);
    next_is_clean(c, BLOCKING);
    tp_http_client_destroy(c);
}

static void test_corrupt_truncated_unknown(void **state)
{
    (void)state;
    char *big = big_body();
    blob gz = gzip_of(big, NGINX_BIG_SIZE, 6);
    unsigned char *bad = malloc(gz.len);
    assert_non_null(bad);
    memcpy(bad, gz.data, gz.len);
    for (size_t i = 100; i < 200; i++) /* inside the first deflate block */
        bad[i] ^= 0x5a;
    serve("gzip", "corrupt", bad, gz.len);
    serve("gzip", "truncated", gz.data, gz.len / 2); /* well framed, the stream cut */
    serve("compress", "big", gz.data, gz.len);
    const struct {
        const char *path, *says;
    } cases[] = {{"/enc/gzip/corrupt", "gzip"},
                 {"/enc/gzip/truncated", "truncated"},
                 {"/enc/compress/big", "compress"}};
    tp_http_client *c = client(true, 0);
    for (way w = BLOCKING; w <= SINK; w++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            result r = fetch(c, w, cases[i].path, NULL, false);
            assert_int_equal(r.rc, TP_EPROTO);
            if (strstr(r.msg, cases[i].says) == NULL)
                fail_msg("%s: \"%s\" does not say %s", cases[i].path, r.msg, cases[i].says);
            free(r.body);
            next_is_clean(c, w);
        }
    tp_http_client_destroy(c);
    free(bad);
    free(gz.data);
    free(big);
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nginx_gzip),
        cmocka_unit_test(test_off_or_callers_own_gets_the_body_as_sent),
        cmocka_unit_test(test_br_zstd_and_layers),
        cmocka_unit_test(test_bomb_stopped_by_ratio),
        cmocka_unit_test(test_decoded_size_is_capped),
        cmocka_unit_test(test_corrupt_truncated_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
