/* test_http_h2.c: tp_http_client over HTTP/2 against the fixture's nginx (a TLS server
 * with "listen ... ssl http2" and a cleartext one with prior knowledge, both sending
 * GOAWAY after 100 requests on a connection): ALPN picks h2 and the responses are byte
 * for byte; a server that chose HTTP/1.1 is remembered (one probe for eight concurrent
 * first requests); TP_HTTP_VERSION_2 refuses what it cannot serve; h2c by prior
 * knowledge; streamed bodies and a stream given up mid-body; trace events name the
 * protocol; 64 threads through nginx's GOAWAYs: no error, every answer its own; and the
 * same through the event engine (64 streams of one engine on one connection, engines on
 * two threads through the GOAWAYs, the fall back to HTTP/1.1).
 * Skipped (77) without the fixture. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/http_both.h"
#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

static tp_http_client *client(tp_http_version v)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.http_version = v;
    tp_http_client *c = NULL;
    tp_errinfo e;
    if (tp_http_client_create(&o, &c, &e) != TP_OK)
        fail_msg("create: %s", e.msg);
    return c;
}

static void url_of(char *out, size_t cap, bool tls, uint16_t port, const char *path)
{
    snprintf(out, cap, "%s://127.0.0.1:%u%s", tls ? "https" : "http", (unsigned)port, path);
}

static tp_http_response *get_ok(tp_http_client *c, const char *url)
{
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_get(c, url, &r, &e);
    if (rc != TP_OK)
        fail_msg("GET %s: %s: %s", url, tp_err_name(rc), e.msg);
    return r;
}

static const char *protocol_of(const tp_http_response *r)
{
    tp_http_response_info info;
    tp_http_response_get_info(r, &info);
    return info.protocol;
}

static void test_alpn_picks_h2_one_connection(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_AUTO);
    char url[160];
    for (int i = 0; i < 10; i++) {
        char path[32];
        snprintf(path, sizeof path, "/uri?i=%d", i);
        url_of(url, sizeof url, true, env.https_h2_port, path);
        tp_http_response *r = get_ok(c, url);
        assert_int_equal(tp_http_response_status(r), 200);
        size_t len;
        const char *body = tp_http_response_body(r, &len);
        assert_int_equal(len, strlen(path));
        assert_memory_equal(body, path, len);
        assert_string_equal(protocol_of(r), "h2");
        /* fields come lower case in HTTP/2; lookups take any case */
        assert_non_null(tp_http_response_header(r, "Content-Type"));
        const char *n, *v;
        assert_true(tp_http_response_header_at(r, 0, &n, &v));
        assert_false(tp_http_response_header_at(r, 1000, &n, &v));
        tp_http_response_info info;
        tp_http_response_get_info(r, &info);
        assert_int_equal(info.reused, i > 0);
        tp_http_response_free(r);
    }
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_int_equal(st.opens, 1);
    tp_pool_stats(tp_http_client_pool(c), &st);
    assert_int_equal(st.opens, 0); /* nothing went over HTTP/1.1 */
    tp_http_client_destroy(c);
}

static void test_post_echo_and_big_body(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_AUTO);
    size_t n = 300 * 1000;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + (i * 7) % 26);
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/echo");
    tp_http_request rq = {
        .method = "POST", .url = url, .body = body, .body_len = n, .timeout = TP_DURATION_DEFAULT};
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_client_do(c, &rq, &r, &e);
    if (rc != TP_OK)
        fail_msg("POST: %s", e.msg);
    size_t len;
    const char *got = tp_http_response_body(r, &len);
    assert_int_equal(len, n);
    assert_memory_equal(got, body, n);
    tp_http_response_free(r);
    url_of(url, sizeof url, true, env.https_h2_port, "/big");
    r = get_ok(c, url);
    got = tp_http_response_body(r, &len);
    assert_int_equal(len, NGINX_BIG_SIZE);
    char line[17];
    snprintf(line, sizeof line, "%015d\n", 65535);
    assert_memory_equal(got + NGINX_BIG_SIZE - 16, line, 16);
    tp_http_response_free(r);
    free(body);
    tp_http_client_destroy(c);
}

/* A streamed body read in pieces; another given up after 64 KiB is reset, and the
 * connection serves the next request (no drain, no second connection). */
static void test_stream_read_and_abandon(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_AUTO);
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/big");
    tp_http_request rq = {.url = url, .flags = TP_HTTP_STREAM, .timeout = TP_DURATION_DEFAULT};
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_do(c, &rq, &r, &e), TP_OK);
    assert_null(tp_http_response_body(r, NULL));
    size_t total = 0, got;
    char buf[10000];
    bool right = true;
    do {
        assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &got, &e), TP_OK);
        for (size_t i = 0; i < got; i++) {
            size_t at = total + i;
            if (at % 16 == 15)
                right = right && buf[i] == '\n';
            else if (at % 16 == 14)
                right = right && buf[i] == (char)('0' + (at / 16) % 10);
        }
        total += got;
    } while (got > 0);
    assert_int_equal(total, NGINX_BIG_SIZE);
    assert_true(right);
    tp_http_response_free(r);

    assert_int_equal(tp_http_client_do(c, &rq, &r, &e), TP_OK);
    assert_int_equal(tp_http_response_read(r, buf, sizeof buf, &got, &e), TP_OK);
    assert_true(got > 0);
    tp_http_response_free(r); /* mid-body: the stream is reset */
    url_of(url, sizeof url, true, env.https_h2_port, "/uri?after");
    r = get_ok(c, url);
    size_t len;
    assert_string_equal(tp_http_response_body(r, &len), "/uri?after");
    tp_http_response_free(r);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.in_use, 0);
    tp_http_client_destroy(c);
}

typedef struct first_job {
    tp_http_client *c;
    const char *url;
    tp_err rc;
    const char *protocol;
} first_job;

static void *first_main(void *arg)
{
    first_job *j = arg;
    tp_http_response *r = NULL;
    j->rc = tp_http_get(j->c, j->url, &r, NULL);
    if (j->rc == TP_OK)
        j->protocol = protocol_of(r);
    tp_http_response_free(r);
    return NULL;
}

/* A TLS server without HTTP/2 (ALPN chose http/1.1): eight first requests at once cost
 * one HTTP/2 probe, all eight are answered over HTTP/1.1, and later ones never probe. */
static void test_alpn_http11_remembered(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_AUTO);
    char url[160];
    url_of(url, sizeof url, true, env.https_port, "/");
    first_job j[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        j[i] = (first_job){.c = c, .url = url};
        pthread_create(&th[i], NULL, first_main, &j[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(j[i].rc, TP_OK);
        assert_string_equal(j[i].protocol, "http/1.1");
    }
    for (int i = 0; i < 5; i++)
        tp_http_response_free(get_ok(c, url));
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_int_equal(st.opens, 0);
    /* One handshake learnt it; the acquires queued behind it failed over without a dial
     * (each an open that failed at once), and no later request asked again. */
    uint64_t probes = st.open_failures;
    assert_true(probes >= 1 && probes <= 8);
    for (int i = 0; i < 5; i++)
        tp_http_response_free(get_ok(c, url));
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_int_equal(st.open_failures, probes);
    tp_pool_stats(tp_http_client_pool(c), &st);
    assert_true(st.opens >= 1);
    tp_http_client_destroy(c);
}

static void test_version_2_forced(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_2);
    char url[160];
    url_of(url, sizeof url, true, env.https_port, "/");
    tp_http_response *r = NULL;
    tp_errinfo e;
    tp_err rc = tp_http_get(c, url, &r, &e); /* no fall back to 1.1 */
    print_message("forced h2 to an HTTP/1.1 server: %s: %s\n", tp_err_name(rc), e.msg);
    assert_int_equal(rc, TP_ETLS);
    assert_null(r);
    /* h2c, by prior knowledge */
    url_of(url, sizeof url, false, env.h2c_port, "/uri?h2c");
    r = get_ok(c, url);
    assert_string_equal(protocol_of(r), "h2");
    assert_string_equal(tp_http_response_body(r, NULL), "/uri?h2c");
    tp_http_response_free(r);
    tp_http_client_destroy(c);

    /* what HTTP/2 does not serve yet is refused, named, rather than sent otherwise */
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.http_version = TP_HTTP_VERSION_2;
    o.decompress = true;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_OK);
    assert_int_equal(tp_http_get(c, url, &r, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "decompress"));
    tp_http_client_destroy(c);
    o.decompress = false;
    o.http_version = (tp_http_version)7;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_EINVAL);
    assert_non_null(strstr(e.msg, "http_version"));
}

/* TP_HTTP_VERSION_1_1 never offers h2: the HTTP/2 server answers over HTTP/1.1. */
static void test_version_1_1(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_1_1);
    assert_null(tp_http_client_h2_pool(c));
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/uri?one");
    tp_http_response *r = get_ok(c, url);
    assert_string_equal(protocol_of(r), "http/1.1");
    tp_http_response_free(r);
    tp_http_client_destroy(c);
}

typedef struct trace_log {
    int got_conn_h2, done_h2;
} trace_log;

static void on_trace(void *ud, const tp_http_trace_event *ev)
{
    trace_log *t = ud;
    bool h2 = ev->protocol != NULL && strcmp(ev->protocol, "h2") == 0;
    t->got_conn_h2 += ev->type == TP_HTTP_TRACE_GOT_CONN && h2;
    t->done_h2 += ev->type == TP_HTTP_TRACE_DONE && h2 && ev->status == 200;
}

static void test_trace_names_protocol(void **state)
{
    (void)state;
    trace_log t = {0};
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.trace = on_trace;
    o.trace_ud = &t;
    tp_http_client *c = NULL;
    assert_int_equal(tp_http_client_create(&o, &c, NULL), TP_OK);
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/");
    for (int i = 0; i < 3; i++)
        tp_http_response_free(get_ok(c, url));
    assert_int_equal(t.got_conn_h2, 3);
    assert_int_equal(t.done_h2, 3);
    tp_http_client_destroy(c);
}

/* ---- GOAWAY under load --------------------------------------------------------------- */

#define LOAD_THREADS 64
#define LOAD_EACH 40

typedef struct load_job {
    tp_http_client *c;
    int id;
    int ok, failed, wrong;
    tp_err last;
    char msg[256];
} load_job;

static void *load_main(void *arg)
{
    load_job *j = arg;
    for (int i = 0; i < LOAD_EACH; i++) {
        char path[64], url[160];
        snprintf(path, sizeof path, "/uri?t=%d&i=%d", j->id, i);
        url_of(url, sizeof url, true, env.https_h2_port, path);
        tp_http_response *r = NULL;
        tp_errinfo e;
        tp_err rc = tp_http_get(j->c, url, &r, &e);
        if (rc != TP_OK) {
            j->failed++;
            j->last = rc;
            snprintf(j->msg, sizeof j->msg, "%s", e.msg);
            continue;
        }
        size_t len;
        const char *body = tp_http_response_body(r, &len);
        if (tp_http_response_status(r) == 200 && len == strlen(path) &&
            memcmp(body, path, len) == 0)
            j->ok++;
        else
            j->wrong++;
        tp_http_response_free(r);
    }
    return NULL;
}

/* nginx ends each connection after 100 requests with a GOAWAY: 2,560 GETs from 64
 * threads cross about 26 of them, and none may surface as an error or a wrong answer. */
static void test_goaway_under_load(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.http2_max_conns_per_host = 4;
    o.pool.acquire_timeout = 10 * TP_NSEC_PER_SEC;
    tp_http_client *c = NULL;
    assert_int_equal(tp_http_client_create(&o, &c, NULL), TP_OK);
    load_job j[LOAD_THREADS];
    pthread_t th[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++) {
        j[i] = (load_job){.c = c, .id = i};
        pthread_create(&th[i], NULL, load_main, &j[i]);
    }
    int ok = 0, failed = 0, wrong = 0;
    for (int i = 0; i < LOAD_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += j[i].ok;
        failed += j[i].failed;
        wrong += j[i].wrong;
        if (j[i].failed > 0)
            print_message("thread %d: %d failed, last %s: %s\n", i, j[i].failed,
                          tp_err_name(j[i].last), j[i].msg);
    }
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    print_message("%d ok, %d failed, %d wrong; %llu connections opened\n", ok, failed, wrong,
                  (unsigned long long)st.opens);
    assert_int_equal(failed, 0);
    assert_int_equal(wrong, 0);
    assert_int_equal(ok, LOAD_THREADS * LOAD_EACH);
    /* a connection serves at most 100: so at least this many were opened */
    assert_true(st.opens >= (uint64_t)(LOAD_THREADS * LOAD_EACH) / 100);
    assert_int_equal(st.in_use, 0);
    /* nginx's GOAWAYs (NO_ERROR, one per connection it ended) are counted by code, and
     * exported. */
    assert_true(st.goaways[0] >= 1 && st.goaways[0] <= st.opens);
    for (int code = 1; code < TP_GOAWAY_CODES; code++)
        assert_int_equal(st.goaways[code], 0);
    assert_int_equal(st.draining, 0);
    tp_metrics *m = NULL;
    assert_int_equal(tp_metrics_create(NULL, &m, NULL), TP_OK);
    assert_int_equal(tp_metrics_register(m, "h2", tp_http_client_h2_pool(c), NULL), TP_OK);
    char *text = NULL;
    assert_int_equal(tp_metrics_render(m, TP_METRICS_PROMETHEUS, &text, NULL), TP_OK);
    char want[96];
    snprintf(want, sizeof want, ",code=\"NO_ERROR\"} %llu\n", (unsigned long long)st.goaways[0]);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "tidepool_goaways_received_total{pool=\"h2\""));
    assert_non_null(strstr(text, "tidepool_connections_draining{pool=\"h2\""));
    free(text);
    tp_metrics_destroy(m);
    tp_http_client_destroy(c);
}

/* ---- lifetime: our own GOAWAY ------------------------------------------------------------ */

typedef struct life_job {
    tp_http_client *c;
    int64_t until; /* run until then, or */
    int count;     /* this many */
    int ok, failed;
    char msg[256];
} life_job;

static void *life_main(void *arg)
{
    life_job *j = arg;
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/");
    for (int i = 0; j->until > 0 ? tp_clock_now() < j->until : i < j->count; i++) {
        tp_http_response *r = NULL;
        tp_errinfo e;
        if (tp_http_get(j->c, url, &r, &e) == TP_OK && tp_http_response_status(r) == 200) {
            j->ok++;
        } else {
            j->failed++;
            snprintf(j->msg, sizeof j->msg, "%s", e.msg);
        }
        tp_http_response_free(r);
    }
    return NULL;
}

static tp_http_client *life_client(uint64_t max_requests, int64_t max_age)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.http2_max_requests_per_conn = max_requests;
    if (max_age > 0) {
        o.pool.max_lifetime = max_age;
        o.pool.idle_timeout = max_age; /* not above the lifetime */
    }
    o.pool.lifetime_jitter = 0; /* exact bounds, so the counts are */
    o.http2_max_conns_per_host = 2;
    tp_http_client *c = NULL;
    assert_int_equal(tp_http_client_create(&o, &c, NULL), TP_OK);
    return c;
}

static void run_life(tp_http_client *c, int threads, int count, int64_t for_ns, int *ok)
{
    life_job j[8];
    pthread_t th[8];
    int64_t until = for_ns > 0 ? tp_clock_now() + for_ns : 0;
    for (int i = 0; i < threads; i++) {
        j[i] = (life_job){.c = c, .until = until, .count = count};
        pthread_create(&th[i], NULL, life_main, &j[i]);
    }
    *ok = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (j[i].failed > 0)
            fail_msg("thread %d: %d failed: %s", i, j[i].failed, j[i].msg);
        *ok += j[i].ok;
    }
}

/* max requests per connection: 35 requests one after another open exactly 4
 * connections (10 each, our GOAWAY after the 10th, the stream finishing); from 8
 * threads 200 requests need at least 20, and no request fails. */
static void test_max_requests_drains(void **state)
{
    (void)state;
    tp_http_client *c = life_client(10, 0);
    int ok;
    run_life(c, 1, 35, 0, &ok);
    assert_int_equal(ok, 35);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_int_equal(st.opens, 4);
    run_life(c, 8, 25, 0, &ok);
    assert_int_equal(ok, 200);
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_true(st.opens >= 4 + 20);
    tp_http_client_destroy(c);
}

/* max age: a connection kept busy (a streamed 1 MiB body read slowly, 64 KiB every
 * 45 ms, about 720 ms) still drains at 200 ms: the GETs made meanwhile, one every 20 ms,
 * move to new connections (at least 3 in all), while the slow body, on the draining
 * connection, arrives whole: drained, not cut. */
typedef struct slow_read {
    tp_http_client *c;
    size_t total;
    tp_err rc;
} slow_read;

static void *slow_main(void *arg)
{
    slow_read *s = arg;
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/big");
    tp_http_request rq = {.url = url, .flags = TP_HTTP_STREAM, .timeout = 10 * TP_NSEC_PER_SEC};
    tp_http_response *r = NULL;
    s->rc = tp_http_client_do(s->c, &rq, &r, NULL);
    static char buf[65536];
    for (size_t got = 1; s->rc == TP_OK && got > 0; s->total += got) {
        tu_sleep_ms(45);
        s->rc = tp_http_response_read(r, buf, sizeof buf, &got, NULL);
    }
    tp_http_response_free(r);
    return NULL;
}

static void test_max_age_drains_a_busy_connection(void **state)
{
    (void)state;
    tp_http_client *c = life_client(0, 200 * TP_NSEC_PER_MSEC);
    slow_read sr = {.c = c};
    pthread_t th;
    pthread_create(&th, NULL, slow_main, &sr);
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/");
    int64_t end = tp_clock_now() + 700 * TP_NSEC_PER_MSEC;
    int ok = 0, n = 0;
    while (tp_clock_now() < end) {
        tp_http_response *r = NULL;
        ok += tp_http_get(c, url, &r, NULL) == TP_OK && tp_http_response_status(r) == 200;
        n++;
        tp_http_response_free(r);
        tu_sleep_ms(20);
    }
    pthread_join(th, NULL);
    assert_int_equal(sr.rc, TP_OK);
    assert_int_equal(sr.total, NGINX_BIG_SIZE);
    assert_int_equal(ok, n);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    print_message("max age 200 ms over 700 ms: %d GETs, %llu connections\n", n,
                  (unsigned long long)st.opens);
    assert_true(st.opens >= 3);
    tp_http_client_destroy(c);
}

/* ---- the event engine ------------------------------------------------------------------ */

/* Both paths, one answer: the engine's request is a stream of the same connection. */
static void test_engine_and_blocking_share_one_connection(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_AUTO);
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, "/uri?both");
    for (int engine = 0; engine < 2; engine++) {
        hb_got g = hb_get(c, engine, url);
        if (g.rc != TP_OK)
            fail_msg("%s: %s", engine ? "engine" : "blocking", g.msg);
        assert_int_equal(g.status, 200);
        assert_string_equal(g.body, "/uri?both");
        assert_string_equal(g.info.protocol, "h2");
    }
    url_of(url, sizeof url, true, env.https_port, "/");
    hb_got g = hb_get(c, true, url); /* HTTP/1.1 only: the engine falls back too */
    assert_int_equal(g.rc, TP_OK);
    assert_string_equal(g.info.protocol, "http/1.1");
    assert_string_equal(g.body, NGINX_BODY);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_int_equal(st.opens, 1);
    tp_http_client_destroy(c);
}

typedef struct eng_load {
    tp_http_client *c;
    int id, rounds, inflight;
    int ok, failed, wrong;
    tp_err last;
    char msg[300];
    int issued;
    tp_http_engine *e;
} eng_load;

typedef struct eng_slot {
    eng_load *l;
    char path[64];
} eng_slot;

static void eng_submit(eng_slot *s);

static void eng_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    eng_slot *s = ud;
    eng_load *l = s->l;
    if (rc != TP_OK) {
        l->failed++;
        l->last = rc;
        snprintf(l->msg, sizeof l->msg, "%s", err != NULL ? err->msg : "");
    } else {
        size_t len;
        const char *body = tp_http_response_body(r, &len);
        if (tp_http_response_status(r) == 200 && len == strlen(s->path) &&
            memcmp(body, s->path, len) == 0 && strcmp(protocol_of(r), "h2") == 0)
            l->ok++;
        else
            l->wrong++;
        tp_http_response_free(r);
    }
    if (l->issued < l->rounds * l->inflight)
        eng_submit(s);
}

static void eng_submit(eng_slot *s)
{
    eng_load *l = s->l;
    snprintf(s->path, sizeof s->path, "/uri?e=%d&n=%d", l->id, l->issued++);
    char url[160];
    url_of(url, sizeof url, true, env.https_h2_port, s->path);
    tp_http_request rq = {.url = url, .timeout = 10 * TP_NSEC_PER_SEC};
    tp_errinfo e;
    if (tp_http_engine_submit(l->e, &rq, eng_done, s, NULL, &e) != TP_OK) {
        l->failed++;
        snprintf(l->msg, sizeof l->msg, "submit: %s", e.msg);
    }
}

static void *eng_main(void *arg)
{
    eng_load *l = arg;
    if (tp_http_engine_create(l->c, &l->e, NULL) != TP_OK) {
        l->failed = -1;
        return NULL;
    }
    eng_slot *slots = calloc((size_t)l->inflight, sizeof *slots);
    for (int i = 0; i < l->inflight; i++) {
        slots[i].l = l;
        eng_submit(&slots[i]);
    }
    tp_http_engine_run(l->e);
    tp_http_engine_destroy(l->e);
    free(slots);
    return NULL;
}

static void run_engines(tp_http_client *c, int engines, int inflight, int rounds, int *ok)
{
    eng_load l[4];
    pthread_t th[4];
    for (int i = 0; i < engines; i++) {
        l[i] = (eng_load){.c = c, .id = i, .rounds = rounds, .inflight = inflight};
        pthread_create(&th[i], NULL, eng_main, &l[i]);
    }
    *ok = 0;
    for (int i = 0; i < engines; i++) {
        pthread_join(th[i], NULL);
        if (l[i].failed != 0 || l[i].wrong != 0)
            fail_msg("engine %d: %d failed, %d wrong; last %s: %s", i, l[i].failed, l[i].wrong,
                     tp_err_name(l[i].last), l[i].msg);
        *ok += l[i].ok;
    }
}

/* 64 requests at once on one engine: one connection carries them all (nginx allows 128
 * streams). */
static void test_engine_streams_on_one_connection(void **state)
{
    (void)state;
    tp_http_client *c = client(TP_HTTP_VERSION_AUTO);
    int ok;
    run_engines(c, 1, 64, 1, &ok);
    assert_int_equal(ok, 64);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.in_use, 0);
    tp_http_client_destroy(c);
}

/* Two engines on two threads, 32 streams each, 2,560 requests through nginx's GOAWAY
 * after every 100: none fails, every answer its own. */
static void test_engine_goaway_under_load(void **state)
{
    (void)state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.ca_file = env.ca_file;
    o.http2_max_conns_per_host = 4;
    tp_http_client *c = NULL;
    assert_int_equal(tp_http_client_create(&o, &c, NULL), TP_OK);
    int ok;
    run_engines(c, 2, 32, 40, &ok);
    assert_int_equal(ok, 2 * 32 * 40);
    tp_stats st;
    tp_pool_stats(tp_http_client_h2_pool(c), &st);
    print_message("engines: %d ok; %llu connections opened\n", ok, (unsigned long long)st.opens);
    assert_true(st.opens >= 2 * 32 * 40 / 100);
    assert_int_equal(st.in_use, 0);
    tp_http_client_destroy(c);
}

int main(void)
{
    tu_watchdog(240);
    if (nginx_env_load(&env) != 0 || env.https_h2_port == 0 || env.h2c_port == 0)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpn_picks_h2_one_connection),
        cmocka_unit_test(test_post_echo_and_big_body),
        cmocka_unit_test(test_stream_read_and_abandon),
        cmocka_unit_test(test_alpn_http11_remembered),
        cmocka_unit_test(test_version_2_forced),
        cmocka_unit_test(test_version_1_1),
        cmocka_unit_test(test_trace_names_protocol),
        cmocka_unit_test(test_goaway_under_load),
        cmocka_unit_test(test_max_requests_drains),
        cmocka_unit_test(test_max_age_drains_a_busy_connection),
        cmocka_unit_test(test_engine_and_blocking_share_one_connection),
        cmocka_unit_test(test_engine_streams_on_one_connection),
        cmocka_unit_test(test_engine_goaway_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
