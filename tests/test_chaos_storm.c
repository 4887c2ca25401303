/* test_chaos_storm.c: a scheduled storm through the fault proxy in front of the fixture's
 * nginx, under load: four threads POST /echo bodies that carry their own request id,
 * while the schedule adds 50 ms of latency, resets every connection, then takes the
 * upstream down for 300 ms. What must hold: no response ever carries another request's
 * body; `idle + in_use + opening == total` at every sample (every 2 ms); failures only
 * of the kinds the faults explain, and none once the storm is over; service back within
 * a bound after the heal; no lease or descriptor left once the load stops. The figures
 * are printed (the README's fault table). Skipped (77) when the fixture is not there. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/test_util.h"

#define MS(x) ((int64_t)(x) * TP_NSEC_PER_MSEC)
#define WORKERS 4
#define RUN_MS 2200
#define DOWN_END_MS 1400
#define RECOVERY_BOUND_MS 1000

static nginx_env env;

typedef struct storm {
    tp_http_client *c;
    char url[128];
    int64_t t0;
    atomic_bool stop;
    _Atomic uint64_t ok, misdelivered, gauge_breaks, samples;
    _Atomic uint64_t failed_by[64];         /* by -tp_err */
    _Atomic uint64_t failed_after_heal;     /* failures that started after the heal + bound */
    _Atomic int64_t first_ok_after_heal_ms; /* -1 until then */
} storm;

typedef struct worker_arg {
    storm *s;
    int id;
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *w = arg;
    storm *s = w->s;
    char body[64], want[64];
    for (uint64_t n = 0; !atomic_load(&s->stop); n++) {
        snprintf(body, sizeof body, "request %d.%llu", w->id, (unsigned long long)n);
        memcpy(want, body, sizeof want);
        tp_http_request req = {.method = "POST",
                               .url = s->url,
                               .body = body,
                               .body_len = strlen(body),
                               .timeout = TP_DURATION_DEFAULT};
        int64_t start_ms = (tp_clock_now() - s->t0) / TP_NSEC_PER_MSEC;
        tp_http_response *r = NULL;
        tp_errinfo e;
        tp_err rc = tp_http_client_do(s->c, &req, &r, &e);
        int64_t end_ms = (tp_clock_now() - s->t0) / TP_NSEC_PER_MSEC;
        if (rc == TP_OK) {
            size_t len;
            const char *got = tp_http_response_body(r, &len);
            if (tp_http_response_status(r) != 200 || len != strlen(want) ||
                memcmp(got, want, len) != 0)
                atomic_fetch_add(&s->misdelivered, 1);
            else
                atomic_fetch_add(&s->ok, 1);
            tp_http_response_free(r);
            if (end_ms >= DOWN_END_MS) {
                int64_t none = -1;
                atomic_compare_exchange_strong(&s->first_ok_after_heal_ms, &none, end_ms);
            }
        } else {
            atomic_fetch_add(&s->failed_by[-rc < 64 ? -rc : 0], 1);
            if (start_ms >= DOWN_END_MS + RECOVERY_BOUND_MS) {
                atomic_fetch_add(&s->failed_after_heal, 1);
                print_message("after the heal, at %lld ms: %s (%s)\n", (long long)start_ms,
                              tp_err_name(rc), e.msg);
            }
            usleep(1000);
        }
    }
    return NULL;
}

static void *sampler(void *arg)
{
    storm *s = arg;
    while (!atomic_load(&s->stop)) {
        tp_stats st;
        tp_pool_stats(tp_http_client_pool(s->c), &st);
        if (st.idle + st.in_use + st.opening != st.total)
            atomic_fetch_add(&s->gauge_breaks, 1);
        atomic_fetch_add(&s->samples, 1);
        usleep(2000);
    }
    return NULL;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* The library's own threads (the runtime's timer thread and workers) keep what they
 * opened for the process's life: start them, and count descriptors after that. */
static void warm_up(void)
{
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    tp_http_client *c;
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&co, &c, &e), TP_OK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)env.http_port);
    tp_http_response *r = NULL;
    assert_int_equal(tp_http_get(c, url, &r, &e), TP_OK);
    tp_http_response_free(r);
    tp_http_client_destroy(c);
}

static void test_scheduled_storm_under_load(void **state)
{
    (void)state;
    warm_up();
    int fds_before = count_fds();
    tp_chaos_options o;
    tp_chaos_options_init(&o);
    o.upstream_host = "127.0.0.1";
    o.upstream_port = env.http_port;
    o.seed = 21;
    tp_chaos *px;
    tp_errinfo e;
    assert_int_equal(tp_chaos_start(&o, &px, &e), TP_OK);
    static storm s;
    memset(&s, 0, sizeof s);
    atomic_store(&s.first_ok_after_heal_ms, -1);
    snprintf(s.url, sizeof s.url, "http://127.0.0.1:%u/echo", (unsigned)tp_chaos_port(px));
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    co.response_header_timeout = MS(1000);
    co.pool.max_per_key = 8;
    assert_int_equal(tp_http_client_create(&co, &s.c, &e), TP_OK);

    tp_chaos_step steps[3];
    memset(steps, 0, sizeof steps);
    for (int i = 0; i < 3; i++) {
        tp_chaos_fault_init(&steps[i].fault);
        steps[i].duration = -1;
    }
    steps[0].at = MS(300); /* a latency spike, 300 ms */
    steps[0].duration = MS(300);
    steps[0].set_fault = true;
    steps[0].fault.latency = MS(50);
    steps[1].at = MS(800); /* every connection reset */
    steps[1].reset_all = true;
    steps[2].at = MS(DOWN_END_MS - 300); /* the upstream down for 300 ms */
    steps[2].down = true;
    steps[2].duration = MS(300);

    s.t0 = tp_clock_now();
    assert_int_equal(tp_chaos_schedule(px, steps, 3, &e), TP_OK);
    pthread_t t[WORKERS], smp;
    worker_arg wa[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        wa[i] = (worker_arg){&s, i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &wa[i]), 0);
    }
    assert_int_equal(pthread_create(&smp, NULL, sampler, &s), 0);
    usleep(RUN_MS * 1000 + 1000000); /* the storm, then a quiet second */
    atomic_store(&s.stop, true);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    pthread_join(smp, NULL);

    tp_stats st;
    tp_pool_stats(tp_http_client_pool(s.c), &st);
    tp_chaos_counters k;
    tp_chaos_counters_read(px, &k);
    print_message("storm: %llu ok, %llu misdelivered, %llu opens, %llu samples with %llu "
                  "gauge breaks, first success %lld ms after the heal; proxy: %llu accepted, "
                  "%llu resets, %llu steps\n",
                  (unsigned long long)s.ok, (unsigned long long)s.misdelivered,
                  (unsigned long long)st.opens, (unsigned long long)s.samples,
                  (unsigned long long)s.gauge_breaks,
                  (long long)(s.first_ok_after_heal_ms - DOWN_END_MS),
                  (unsigned long long)k.accepted, (unsigned long long)k.resets,
                  (unsigned long long)k.steps);
    for (int i = 1; i < 64; i++)
        if (s.failed_by[i] > 0)
            print_message("  %llu failed: %s\n", (unsigned long long)s.failed_by[i],
                          tp_err_name((tp_err)-i));
    assert_int_equal(s.misdelivered, 0);
    assert_int_equal(s.gauge_breaks, 0);
    assert_true(s.samples > 100);
    assert_int_equal(s.failed_after_heal, 0);
    assert_true(s.ok > 100);
    assert_int_equal(k.steps, 3);
    assert_true(s.first_ok_after_heal_ms >= DOWN_END_MS);
    assert_true(s.first_ok_after_heal_ms - DOWN_END_MS <= RECOVERY_BOUND_MS);
    /* only what the faults explain: resets, refusals, the header timeout */
    for (int i = 1; i < 64; i++) {
        tp_err rc = (tp_err)-i;
        if (s.failed_by[i] > 0)
            assert_true(rc == TP_ECONNRESET || rc == TP_ECONNREFUSED || rc == TP_EHDRTIMEDOUT ||
                        rc == TP_EBREAKER || rc == TP_ETIMEDOUT);
    }
    assert_int_equal(st.in_use, 0); /* no lease left behind */
    tp_http_client_destroy(s.c);
    tp_chaos_stop(px);
    int fds_after = count_fds();
    if (fds_after != fds_before) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "ls -l /proc/%d/fd >&2", (int)getpid());
        (void)!system(cmd);
    }
    assert_int_equal(fds_after, fds_before); /* nor a descriptor */
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    tu_watchdog(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheduled_storm_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
