/* test_http_engine.c: the event engine against the misbehaving test server: many
 * requests in flight on few connections (none lost, waiters served in order),
 * cancellation while waiting and while in flight, deadlines under load, submission from
 * several threads, destroy with requests pending, and the client's failure cases (stale
 * connections, the safe retry, malformed framing, refused and black-holed connects)
 * driven through the loop. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/http_test_server.h"
#include "support/test_util.h"

#define MAXR 1024

typedef struct fx {
    hts_server *srv;
    tp_http_client *c;
    tp_http_engine *e;
    char url[128];
    /* completions, in order */
    int n;
    int status[MAXR];  /* tp_err */
    int http[MAXR];    /* HTTP status */
    int order[MAXR];   /* the request index (ud) completed n-th */
    bool reused[MAXR], retried[MAXR];
    int64_t done_at[MAXR];
    pthread_mutex_t mu;
} fx;

typedef struct tag {
    fx *x;
    int idx;
} tag;

static tag tags[MAXR];

static void on_done(void *ud, tp_err status, tp_http_response *r, const tp_errinfo *err)
{
    tag *t = ud;
    fx *x = t->x;
    pthread_mutex_lock(&x->mu);
    int k = x->n++;
    x->status[k] = status;
    x->order[k] = t->idx;
    x->done_at[k] = tu_now_ns();
    if (status == TP_OK) {
        x->http[k] = tp_http_response_status(r);
        tp_http_response_info info;
        tp_http_response_get_info(r, &info);
        x->reused[k] = info.reused;
        x->retried[k] = info.retried;
        size_t len;
        const char *body = tp_http_response_body(r, &len);
        if (len != strlen(HTS_DEFAULT_BODY) || memcmp(body, HTS_DEFAULT_BODY, len) != 0)
            x->http[k] = -1; /* wrong body */
    } else if (err == NULL) {
        x->http[k] = -2; /* an error must come with detail */
    }
    pthread_mutex_unlock(&x->mu);
    tp_http_response_free(r);
}

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    pthread_mutex_init(&x->mu, NULL);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_http_engine_destroy(x->e);
    tp_http_client_destroy(x->c);
    hts_stop(x->srv);
    pthread_mutex_destroy(&x->mu);
    free(x);
    return 0;
}

static void start(fx *x, const hts_behavior *per, size_t n, tp_http_client_options *co)
{
    hts_options so;
    hts_options_init(&so);
    so.per_request = per;
    so.n_per_request = n;
    assert_int_equal(hts_start(&so, &x->srv), 0);
    snprintf(x->url, sizeof x->url, "http://127.0.0.1:%u/", (unsigned)hts_port(x->srv));
    tp_http_client_options o;
    if (co == NULL) {
        tp_http_client_options_init(&o);
        co = &o;
    }
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(co, &x->c, &e), TP_OK);
    assert_int_equal(tp_http_engine_create(x->c, &x->e, &e), TP_OK);
}

static uint64_t submit(fx *x, int idx, const char *method, const char *body, int64_t timeout)
{
    tags[idx] = (tag){x, idx};
    tp_http_request req = {.method = method, .url = x->url, .body = body,
                           .body_len = body != NULL ? strlen(body) : 0,
                           .timeout = timeout};
    uint64_t id = 0;
    tp_errinfo e;
    assert_int_equal(tp_http_engine_submit(x->e, &req, on_done, &tags[idx], &id, &e), TP_OK);
    return id;
}

static tp_stats stats(fx *x)
{
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(x->c), &st);
    return st;
}

static void test_many_in_flight_on_few_connections(void **state)
{
    fx *x = *state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 4;
    o.pool.max_idle_per_key = 4;
    start(x, NULL, 0, &o);
    enum { N = 300 };
    for (int i = 0; i < N; i++)
        submit(x, i, NULL, NULL, TP_DURATION_DEFAULT);
    assert_int_equal(tp_http_engine_pending(x->e), N);
    tp_http_engine_run(x->e);
    assert_int_equal(x->n, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(x->status[i], TP_OK);
        assert_int_equal(x->http[i], 200);
    }
    tp_stats st = stats(x);
    assert_true(st.opens <= 4);
    assert_true(hts_connections(x->srv) <= 4);
    assert_int_equal(hts_requests(x->srv), N);
    assert_int_equal(st.in_use, 0);
}

static void test_waiters_served_in_order(void **state)
{
    fx *x = *state;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 1;
    o.pool.max_idle_per_key = 1;
    o.pool.fair_after = 0;
    start(x, NULL, 0, &o);
    enum { N = 40 };
    for (int i = 0; i < N; i++)
        submit(x, i, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    assert_int_equal(x->n, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(x->status[i], TP_OK);
        assert_int_equal(x->order[i], i); /* one connection, FIFO: completion order */
    }
    assert_int_equal(stats(x).opens, 1);
}

static void test_cancel_waiting_and_in_flight(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_NO_RESPONSE}};
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 1;
    start(x, per, 1, &o);
    uint64_t a = submit(x, 0, NULL, NULL, TP_DURATION_DEFAULT); /* in flight, never answered */
    uint64_t b = submit(x, 1, NULL, NULL, TP_DURATION_DEFAULT); /* waits for the connection */
    for (int i = 0; i < 20 && hts_requests(x->srv) < 1; i++)
        tp_http_engine_poll(x->e, 20 * TP_NSEC_PER_MSEC);
    assert_int_equal(hts_requests(x->srv), 1);
    assert_int_equal(x->n, 0);
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp_http_engine_cancel(x->e, b), TP_OK);
    tp_http_engine_poll(x->e, 0);
    assert_int_equal(x->n, 1);
    assert_int_equal(x->status[0], TP_ECANCELED);
    assert_int_equal(x->order[0], 1);
    assert_int_equal(tp_http_engine_cancel(x->e, a), TP_OK);
    tp_http_engine_poll(x->e, 0);
    assert_true(tu_ms_since(t0) < 200);
    assert_int_equal(x->n, 2);
    assert_int_equal(x->status[1], TP_ECANCELED);
    /* The in-flight connection was closed, never returned half-used. */
    tp_stats st = stats(x);
    assert_int_equal(st.total, 0);
    assert_int_equal(st.closes[TP_CLOSE_BROKEN], 1);
    assert_int_equal(tp_http_engine_cancel(x->e, 999), TP_ESTATE);
}

static void test_header_deadlines_under_load(void **state)
{
    fx *x = *state;
    hts_behavior b = {.mode = HTS_SLOW_HEADERS, .delay_ms = 800};
    hts_behavior per[40];
    for (int i = 0; i < 40; i++)
        per[i] = b;
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.response_header_timeout = 100 * TP_NSEC_PER_MSEC;
    o.pool.max_per_key = 40;
    start(x, per, 40, &o);
    int64_t t0 = tu_now_ns();
    for (int i = 0; i < 40; i++)
        submit(x, i, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    assert_int_equal(x->n, 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(x->status[i], TP_EHDRTIMEDOUT);
        double ms = (double)(x->done_at[i] - t0) / 1e6;
        assert_true(ms >= 95 && ms < 700);
    }
}

static void test_request_deadline_while_queued(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_NO_RESPONSE}};
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 1;
    start(x, per, 1, &o);
    submit(x, 0, NULL, NULL, 300 * TP_NSEC_PER_MSEC);
    int64_t t0 = tu_now_ns();
    submit(x, 1, NULL, NULL, 100 * TP_NSEC_PER_MSEC); /* queued behind it */
    tp_http_engine_run(x->e);
    assert_int_equal(x->n, 2);
    assert_int_equal(x->order[0], 1);
    assert_int_equal(x->status[0], TP_EREQTIMEDOUT);
    double ms = (double)(x->done_at[0] - t0) / 1e6;
    assert_true(ms >= 95 && ms < 250);
    assert_int_equal(x->status[1], TP_EREQTIMEDOUT);
}

typedef struct submitter {
    fx *x;
    int base, count;
} submitter;

static void *submit_main(void *arg)
{
    submitter *s = arg;
    for (int i = 0; i < s->count; i++)
        submit(s->x, s->base + i, NULL, NULL, TP_DURATION_DEFAULT);
    return NULL;
}

static void test_submission_from_threads(void **state)
{
    fx *x = *state;
    start(x, NULL, 0, NULL);
    enum { T = 4, EACH = 100 };
    pthread_t th[T];
    submitter s[T];
    for (int i = 0; i < T; i++) {
        s[i] = (submitter){x, i * EACH, EACH};
        tu_thread_start(&th[i], submit_main, &s[i]);
    }
    int64_t t0 = tu_now_ns();
    while (tu_ms_since(t0) < 10000) {
        tp_http_engine_poll(x->e, 10 * TP_NSEC_PER_MSEC);
        pthread_mutex_lock(&x->mu);
        int n = x->n;
        pthread_mutex_unlock(&x->mu);
        if (n == T * EACH)
            break;
    }
    for (int i = 0; i < T; i++)
        tu_thread_join(th[i]);
    tp_http_engine_run(x->e);
    assert_int_equal(x->n, T * EACH);
    for (int i = 0; i < T * EACH; i++)
        assert_int_equal(x->status[i], TP_OK);
}

static void test_destroy_with_pending_requests(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_NO_RESPONSE}};
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.max_per_key = 1;
    start(x, per, 1, &o);
    for (int i = 0; i < 5; i++)
        submit(x, i, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_poll(x->e, 50 * TP_NSEC_PER_MSEC);
    tp_http_engine_destroy(x->e);
    x->e = NULL;
    assert_int_equal(x->n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(x->status[i], TP_ECANCELED);
    assert_int_equal(stats(x).total, 0);
}

static void test_stale_connection_and_retry(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {{.mode = HTS_UNSOLICITED, .delay_ms = 20},
                          {.mode = HTS_NORMAL},
                          {.mode = HTS_CLOSE_BEFORE_RESPONSE}};
    start(x, per, 3, NULL);
    submit(x, 0, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    tu_sleep_ms(80);
    submit(x, 1, NULL, NULL, TP_DURATION_DEFAULT); /* the 408 must not be its answer */
    tp_http_engine_run(x->e);
    submit(x, 2, NULL, NULL, TP_DURATION_DEFAULT); /* reused, EOF: retried on a fresh one */
    tp_http_engine_run(x->e);
    assert_int_equal(x->n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x->status[i], TP_OK);
        assert_int_equal(x->http[i], 200);
    }
    assert_false(x->reused[1]);
    assert_true(x->retried[2]);
    assert_int_equal(stats(x).closes[TP_CLOSE_CHECK_FAILED], 1);
}

static void test_post_not_retried_and_framing_errors(void **state)
{
    fx *x = *state;
    hts_behavior per[] = {
        {.mode = HTS_NORMAL},
        {.mode = HTS_CLOSE_BEFORE_RESPONSE},
        {.mode = HTS_RAW, .raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
    };
    start(x, per, 3, NULL);
    submit(x, 0, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    submit(x, 1, "POST", "payload", TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    submit(x, 2, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    assert_int_equal(x->status[1], TP_ECONNRESET);
    assert_int_equal(x->status[2], TP_EPROTO);
    submit(x, 3, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    assert_int_equal(x->status[3], TP_OK);
    assert_int_equal(hts_requests(x->srv), 4); /* the POST went out once */
}

static void test_refused_and_black_hole(void **state)
{
    fx *x = *state;
    start(x, NULL, 0, NULL);
    hts_stop(x->srv);
    x->srv = NULL;
    submit(x, 0, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    assert_int_equal(x->status[0], TP_ECONNREFUSED);

    hts_blackhole bh;
    if (hts_blackhole_open(&bh) != 0)
        skip();
    tp_http_engine_destroy(x->e);
    tp_http_client_destroy(x->c);
    tp_http_client_options o;
    tp_http_client_options_init(&o);
    o.pool.connect_timeout = 150 * TP_NSEC_PER_MSEC;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&o, &x->c, &e), TP_OK);
    assert_int_equal(tp_http_engine_create(x->c, &x->e, &e), TP_OK);
    snprintf(x->url, sizeof x->url, "http://127.0.0.1:%u/", (unsigned)bh.port);
    int64_t t0 = tu_now_ns();
    submit(x, 1, NULL, NULL, TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    double ms = tu_ms_since(t0);
    hts_blackhole_close(&bh);
    assert_int_equal(x->status[1], TP_ECONNTIMEDOUT);
    assert_true(ms >= 140 && ms < 1000);
}

static void test_request_bytes_and_invalid_submissions(void **state)
{
    fx *x = *state;
    start(x, NULL, 0, NULL);
    submit(x, 0, "PUT", "abc", TP_DURATION_DEFAULT);
    tp_http_engine_run(x->e);
    assert_int_equal(x->status[0], TP_OK);
    char raw[2048];
    hts_last_request(x->srv, raw, sizeof raw);
    assert_non_null(strstr(raw, "PUT / HTTP/1.1\r\n"));
    assert_non_null(strstr(raw, "\r\nContent-Length: 3\r\n"));
    assert_non_null(strstr(raw, "\r\n\r\nabc"));
    tp_http_request bad = {.url = "ftp://x/", .timeout = TP_DURATION_DEFAULT};
    tp_errinfo e;
    assert_int_equal(tp_http_engine_submit(x->e, &bad, on_done, NULL, NULL, &e), TP_EINVAL);
    bad.url = x->url;
    bad.flags = TP_HTTP_STREAM;
    assert_int_equal(tp_http_engine_submit(x->e, &bad, on_done, NULL, NULL, &e), TP_EINVAL);
    assert_int_equal(tp_http_engine_pending(x->e), 0);
}

int main(void)
{
    tu_watchdog(120);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_many_in_flight_on_few_connections),
        T(test_waiters_served_in_order),
        T(test_cancel_waiting_and_in_flight),
        T(test_header_deadlines_under_load),
        T(test_request_deadline_while_queued),
        T(test_submission_from_threads),
        T(test_destroy_with_pending_requests),
        T(test_stale_connection_and_retry),
        T(test_post_not_retried_and_framing_errors),
        T(test_refused_and_black_hole),
        T(test_request_bytes_and_invalid_submissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
