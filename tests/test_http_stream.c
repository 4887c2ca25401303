/* test_http_stream.c: streamed bodies against the fixture's nginx. Request bodies from
 * a source callback, of unknown length (sent chunked) and of announced length, in the
 * blocking call and the engine, echoed back byte for byte by /echo; a source that gives
 * too few or too many bytes, or fails, ends the request with a clear error; an engine
 * source that pauses and is resumed. The engine's response sink: 100 MiB from /huge
 * delivered in chunks, paused every 8 MiB (nothing is read while paused: the count
 * stands still) and resumed, with the process's memory flat. Skipped (77) without the
 * fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;

/* A body source: total bytes of a pattern, in pieces of at most step bytes. */
typedef struct source {
    size_t total, step, given;
    int fail_at;        /* call number that fails (0: never) */
    int pause_first;    /* engine: answer TP_HTTP_PAUSE to the first call(s) */
    int calls;
    bool paused;
} source;

static char pattern(size_t i)
{
    return (char)('a' + (i * 7 + i / 251) % 26);
}

static int produce(void *ud, char *buf, size_t cap, size_t *len)
{
    source *s = ud;
    s->calls++;
    if (s->fail_at != 0 && s->calls == s->fail_at)
        return TP_EIO;
    if (s->pause_first > 0) {
        s->pause_first--;
        s->paused = true;
        return TP_HTTP_PAUSE;
    }
    size_t n = s->total - s->given;
    if (n > s->step)
        n = s->step;
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(s->given + i);
    s->given += n;
    *len = n;
    return 0;
}

typedef struct got {
    bool done;
    tp_err rc;
    int status;
    size_t len;
    bool intact;
    char msg[256];
} got;

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    got *g = ud;
    g->done = true;
    g->rc = rc;
    if (rc == TP_OK) {
        g->status = tp_http_response_status(r);
        const char *b = tp_http_response_body(r, &g->len);
        g->intact = true;
        for (size_t i = 0; i < g->len; i++)
            if (b[i] != pattern(i)) {
                g->intact = false;
                break;
            }
    } else if (err != NULL) {
        snprintf(g->msg, sizeof g->msg, "%s", err->msg);
    }
    tp_http_response_free(r);
}

static tp_http_client *client(void)
{
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    tp_http_client *c = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &c, &e), TP_OK);
    return c;
}

static got upload(tp_http_client *c, bool engine, source *s, int64_t announced)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", (unsigned)env.http_port);
    tp_http_request req = {.method = "POST",
                           .url = url,
                           .timeout = 10 * TP_NSEC_PER_SEC,
                           .body_source = produce,
                           .body_source_ud = s,
                           .body_source_len = announced};
    got g = {0};
    tp_errinfo err = {0};
    if (!engine) {
        tp_http_response *r = NULL;
        tp_err rc = tp_http_client_do(c, &req, &r, &err);
        on_done(&g, rc, r, &err);
        return g;
    }
    tp_http_engine *e = NULL;
    assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);
    uint64_t id = 0;
    assert_int_equal(tp_http_engine_submit(e, &req, on_done, &g, &id, &err), TP_OK);
    int64_t t0 = tu_now_ns();
    while (!g.done && tu_now_ns() - t0 < 15 * TP_NSEC_PER_SEC) {
        (void)tp_http_engine_poll(e, 20 * TP_NSEC_PER_MSEC);
        if (s->paused) { /* the producer has bytes again */
            s->paused = false;
            assert_int_equal(tp_http_engine_resume(e, id), TP_OK);
        }
    }
    tp_http_engine_destroy(e);
    return g;
}

static void test_upload_unknown_and_known_length(void **state)
{
    (void)state;
    tp_http_client *c = client();
    for (int engine = 0; engine < 2; engine++) {
        const size_t total = 300 * 1024 + 17;
        for (int known = 0; known < 2; known++) {
            source s = {.total = total, .step = 7000, .pause_first = engine ? 2 : 0};
            got g = upload(c, engine, &s, known ? (int64_t)total : -1);
            if (g.rc != TP_OK)
                fail_msg("%s, %s length: %s: %s", engine ? "engine" : "blocking",
                         known ? "known" : "unknown", tp_err_name(g.rc), g.msg);
            assert_int_equal(g.status, 200);
            assert_int_equal(g.len, total);
            assert_true(g.intact);
            assert_true(s.calls >= (int)(total / 7000));
        }
        source empty = {.total = 0, .step = 1};
        got g = upload(c, engine, &empty, -1); /* "0\r\n\r\n" alone */
        assert_int_equal(g.rc, TP_OK);
        assert_int_equal(g.len, 0);
    }
    tp_http_client_destroy(c);
}

static void test_source_errors(void **state)
{
    (void)state;
    tp_http_client *c = client();
    for (int engine = 0; engine < 2; engine++) {
        source few = {.total = 1000, .step = 100};
        got g = upload(c, engine, &few, 2000);
        assert_int_equal(g.rc, TP_EINVAL);
        assert_non_null(strstr(g.msg, "announced"));
        source many = {.total = 3000, .step = 1000};
        g = upload(c, engine, &many, 2000);
        assert_int_equal(g.rc, TP_EINVAL);
        source failing = {.total = 100000, .step = 1000, .fail_at = 3};
        g = upload(c, engine, &failing, -1);
        assert_int_equal(g.rc, TP_EIO);
        assert_int_equal(failing.calls, 3); /* never called again: no retry of a source */
    }
    /* body and body_source together, on_body in the blocking call: refused */
    tp_http_request req = {.method = "POST", .url = "http://127.0.0.1:1/", .body = "x",
                           .body_len = 1, .body_source = produce};
    tp_http_response *r = NULL;
    tp_errinfo e;
    assert_int_equal(tp_http_client_do(c, &req, &r, &e), TP_EINVAL);
    tp_http_client_destroy(c);
}

/* ---- the engine's response sink ---------------------------------------------------- */

typedef struct sink {
    uint64_t bytes, next_pause;
    bool paused;
    bool zeros;
} sink;

static int take(void *ud, const char *data, size_t len)
{
    sink *k = ud;
    for (size_t i = 0; i < len && k->zeros; i++)
        k->zeros = data[i] == 0;
    k->bytes += len;
    if (k->bytes >= k->next_pause) {
        k->next_pause += 8u << 20;
        k->paused = true;
        return TP_HTTP_PAUSE;
    }
    return 0;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void test_sink_paused_and_resumed_flat_memory(void **state)
{
    (void)state;
    tp_http_client *c = client();
    tp_http_engine *e = NULL;
    tp_errinfo err;
    assert_int_equal(tp_http_engine_create(c, &e, &err), TP_OK);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/huge", (unsigned)env.http_port);
    sink k = {.next_pause = 8u << 20, .zeros = true};
    tp_http_request req = {.url = url, .timeout = 60 * TP_NSEC_PER_SEC, .on_body = take,
                           .on_body_ud = &k};
    got g = {0};
    uint64_t id = 0;
    long rss0 = rss_kib(), peak = rss0;
    assert_int_equal(tp_http_engine_submit(e, &req, on_done, &g, &id, &err), TP_OK);
    int pauses = 0;
    bool checked_still = false;
    int64_t t0 = tu_now_ns();
    while (!g.done && tu_now_ns() - t0 < 50 * TP_NSEC_PER_SEC) {
        (void)tp_http_engine_poll(e, 10 * TP_NSEC_PER_MSEC);
        long now = rss_kib();
        if (now > peak)
            peak = now;
        if (k.paused) {
            pauses++;
            if (!checked_still) { /* paused: nothing more arrives, however long we poll */
                uint64_t at = k.bytes;
                for (int i = 0; i < 20; i++)
                    (void)tp_http_engine_poll(e, 10 * TP_NSEC_PER_MSEC);
                assert_true(k.bytes == at);
                checked_still = true;
            }
            k.paused = false;
            assert_int_equal(tp_http_engine_resume(e, id), TP_OK);
        }
    }
    if (g.rc != TP_OK)
        fail_msg("%s: %s", tp_err_name(g.rc), g.msg);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.len, 0); /* streamed: nothing buffered for the done callback */
    assert_true(k.bytes == 100u << 20);
    assert_true(k.zeros);
    assert_true(pauses >= 12);
    print_message("100 MiB streamed, %d pauses, RSS %ld -> peak %ld KiB\n", pauses, rss0, peak);
    assert_true(peak - rss0 < 16 * 1024); /* flat: not the 100 MiB a buffered body costs */
    tp_http_engine_destroy(e);
    tp_http_client_destroy(c);
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_unknown_and_known_length),
        cmocka_unit_test(test_source_errors),
        cmocka_unit_test(test_sink_paused_and_resumed_flat_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
