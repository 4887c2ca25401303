/* test_chaos_nginx.c: the HTTP client's pool behind the fault proxy (tidepool/chaos.h) in
 * front of the real nginx of the "nginx" fixture, one fault at a time, for the blocking
 * call and for the engine (each scenario runs once each way): what the caller
 * sees (an error with a name, never a wrong or short body reported as success), what the
 * pool does with the connections the fault spoiled, and that service comes back once the
 * fault is lifted. Then the same proxy from the command line (`tidepool chaos`).
 * Skipped (77) when the fixture is not there. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/chaos_rig.h"
#include "support/nginx_env.h"

#define MS(x) ((int64_t)(x) * TP_NSEC_PER_MSEC)

static nginx_env env;

typedef struct rig {
    tp_chaos *proxy;
    tp_http_client *c;
    tp_http_engine *eng; /* the engine way; NULL: the blocking call */
    char url[128], big[128];
} rig;

static const int BLOCKING = 0, ENGINE = 1;

static void rig_start(rig *r, int64_t header_timeout, void **state)
{
    r->eng = NULL;
    r->proxy = chaos_rig_start(env.http_port, 7);
    tp_errinfo e;
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%u/", (unsigned)tp_chaos_port(r->proxy));
    snprintf(r->big, sizeof r->big, "http://127.0.0.1:%u/big",
             (unsigned)tp_chaos_port(r->proxy));
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    if (header_timeout > 0)
        co.response_header_timeout = header_timeout;
    co.pool.breaker_threshold = 1000; /* the faults are the point here, not the breaker */
    assert_int_equal(tp_http_client_create(&co, &r->c, &e), TP_OK);
    if (*(const int *)*state == ENGINE)
        assert_int_equal(tp_http_engine_create(r->c, &r->eng, &e), TP_OK);
}

static void rig_stop(rig *r)
{
    tp_http_engine_destroy(r->eng);
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(r->c), &st);
    assert_int_equal(st.in_use, 0); /* no lease left behind */
    assert_int_equal(st.idle + st.in_use + st.opening, st.total);
    tp_http_client_destroy(r->c);
    tp_chaos_stop(r->proxy);
}

typedef struct done_rec {
    bool done;
    tp_err rc;
    tp_http_response *resp;
    tp_errinfo err;
} done_rec;

static void on_done(void *ud, tp_err rc, tp_http_response *resp, const tp_errinfo *err)
{
    done_rec *d = ud;
    d->rc = rc;
    d->resp = resp;
    if (err != NULL)
        d->err = *err;
    d->done = true;
}

/* GET url the rig's way. */
static tp_err get(rig *r, const char *url, tp_http_response **resp, tp_errinfo *e)
{
    if (r->eng == NULL)
        return tp_http_get(r->c, url, resp, e);
    tp_http_request req = {.method = "GET", .url = url, .timeout = TP_DURATION_DEFAULT};
    done_rec d = {0};
    tp_err rc = tp_http_engine_submit(r->eng, &req, on_done, &d, NULL, e);
    if (rc != TP_OK)
        return rc;
    while (!d.done)
        (void)tp_http_engine_poll(r->eng, MS(100));
    *resp = d.resp;
    *e = d.err;
    return d.rc;
}

/* GET url: TP_OK only with status 200 and exactly the expected body. */
static tp_err get_checked(rig *r, const char *url, bool big)
{
    tp_http_response *resp = NULL;
    tp_errinfo e;
    tp_err rc = get(r, url, &resp, &e);
    if (rc != TP_OK) {
        print_message("GET %s: %s (%s)\n", url, tp_err_name(rc), e.msg);
        return rc;
    }
    assert_int_equal(tp_http_response_status(resp), 200);
    size_t len;
    const char *body = tp_http_response_body(resp, &len);
    if (!big) {
        assert_int_equal(len, strlen(NGINX_BODY));
        assert_memory_equal(body, NGINX_BODY, len);
    } else {
        assert_int_equal(len, NGINX_BIG_SIZE);
        char line[17];
        for (size_t k = 0; k < NGINX_BIG_SIZE / 16; k += 997) {
            snprintf(line, sizeof line, "%015zu\n", k);
            assert_memory_equal(body + 16 * k, line, 16);
        }
    }
    tp_http_response_free(resp);
    return TP_OK;
}

/* Latency: every exchange pays it both ways, on a fresh and on a reused connection. */
static void test_latency(void **state)
{
    rig r;
    rig_start(&r, 0, state);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.latency = MS(25);
    chaos_rig_set(r.proxy, &f);
    for (int i = 0; i < 3; i++) {
        int64_t t0 = tp_clock_now();
        assert_int_equal(get_checked(&r, r.url, false), TP_OK);
        assert_true(tp_clock_now() - t0 >= 2 * f.latency);
    }
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(r.c), &st);
    assert_int_equal(st.opens, 1); /* the later two reused it */
    rig_stop(&r);
}

/* A reset in the middle of a 1 MiB body: an error, never a short body; the connection
 * is not pooled again; after the heal the whole body arrives. */
static void test_reset_mid_body(void **state)
{
    rig r;
    rig_start(&r, 0, state);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.direction = TP_CHAOS_DOWN;
    f.reset_after_bytes = 100000;
    chaos_rig_set(r.proxy, &f);
    tp_err rc = get_checked(&r, r.big, true);
    assert_int_not_equal(rc, TP_OK);
    assert_int_equal(rc, TP_ECONNRESET);
    chaos_rig_clear(r.proxy);
    assert_int_equal(get_checked(&r, r.big, true), TP_OK);
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(r.c), &st);
    assert_int_equal(st.total, 1); /* the reset connection is gone */
    rig_stop(&r);
}

/* Every pooled connection reset while idle (a server restart, a middlebox flush): the
 * next GETs all succeed, on new connections. */
static void test_idle_connections_reset(void **state)
{
    rig r;
    rig_start(&r, 0, state);
    for (int i = 0; i < 4; i++)
        assert_int_equal(get_checked(&r, r.url, false), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.reset_after = 0; /* every connection open now, at once */
    chaos_rig_set(r.proxy, &f);
    chaos_rig_wait_open(r.proxy, 0);
    chaos_rig_clear(r.proxy);
    for (int i = 0; i < 10; i++)
        assert_int_equal(get_checked(&r, r.url, false), TP_OK);
    tp_stats st;
    tp_pool_stats(tp_http_client_pool(r.c), &st);
    for (int k = 0; k < TP_CLOSE__COUNT; k++)
        if (st.closes[k] > 0)
            print_message("after the reset: %llu closed: %s\n", (unsigned long long)st.closes[k],
                          tp_close_reason_name(k));
    assert_true(st.opens >= 2);
    /* the dead connection was caught before a request went out on it */
    assert_true(st.closes[TP_CLOSE_CHECK_FAILED] >= 1);
    rig_stop(&r);
}

/* A pooled connection whose peer vanished (half-open: no FIN, no RST): the request on
 * it ends at the response header timeout with that error, and the next one, after the
 * heal, succeeds on a new connection. */
static void test_half_open_pooled_connection(void **state)
{
    rig r;
    rig_start(&r, MS(300), state);
    assert_int_equal(get_checked(&r, r.url, false), TP_OK);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.half_open = true;
    chaos_rig_set(r.proxy, &f);
    int64_t t0 = tp_clock_now();
    tp_err rc = get_checked(&r, r.url, false);
    int64_t took = tp_clock_now() - t0;
    print_message("GET on a half-open connection: %s after %.1f ms\n", tp_err_name(rc),
                  (double)took / 1e6);
    assert_int_equal(rc, TP_EHDRTIMEDOUT);
    assert_true(took >= MS(300));
    assert_true(took < MS(3000));
    chaos_rig_clear(r.proxy);
    assert_int_equal(get_checked(&r, r.url, false), TP_OK);
    rig_stop(&r);
}

/* Connects refused: the error says so at once; back when the listener is. */
static void test_refused(void **state)
{
    rig r;
    rig_start(&r, 0, state);
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    f.refuse = true;
    chaos_rig_set(r.proxy, &f);
    int64_t t0 = tp_clock_now();
    assert_int_equal(get_checked(&r, r.url, false), TP_ECONNREFUSED);
    assert_true(tp_clock_now() - t0 < MS(1000));
    chaos_rig_clear(r.proxy);
    int64_t end = tp_clock_now() + 5 * TP_NSEC_PER_SEC;
    tp_err rc;
    while ((rc = get_checked(&r, r.url, false)) != TP_OK && tp_clock_now() < end)
        usleep(20000); /* the open's backoff after the refusal */
    assert_int_equal(rc, TP_OK);
    rig_stop(&r);
}

/* ---- the command line ------------------------------------------------------------- */

/* Reads a line from fd (up to cap - 1 bytes) within ms; false on timeout or EOF. */
static bool read_line(int fd, char *buf, size_t cap, int ms)
{
    size_t n = 0;
    int64_t end = tp_clock_now() + MS(ms);
    while (n + 1 < cap) {
        int left = (int)((end - tp_clock_now()) / TP_NSEC_PER_MSEC);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, left) != 1)
            return false;
        char ch;
        if (read(fd, &ch, 1) != 1)
            return false;
        if (ch == '\n')
            break;
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return true;
}

static void test_cli(void **state)
{
    (void)state;
    const char *cli = getenv("TIDEPOOL_CLI");
    if (cli == NULL || access(cli, X_OK) != 0) {
        print_message("TIDEPOOL_CLI not set or not executable: skipped\n");
        return;
    }
    char upstream[64];
    snprintf(upstream, sizeof upstream, "127.0.0.1:%u", (unsigned)env.http_port);
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        execl(cli, cli, "chaos", "--listen", "127.0.0.1:0", "--upstream", upstream,
              "--latency", "20ms", "--json", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    char line[512];
    assert_true(read_line(err[0], line, sizeof line, 5000));
    unsigned port = 0;
    assert_int_equal(sscanf(line, "tidepool chaos: listening on port %u", &port), 1);
    rig r = {0};
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    tp_errinfo e;
    assert_int_equal(tp_http_client_create(&co, &r.c, &e), TP_OK);
    snprintf(r.url, sizeof r.url, "http://127.0.0.1:%u/", port);
    int64_t t0 = tp_clock_now();
    assert_int_equal(get_checked(&r, r.url, false), TP_OK);
    assert_true(tp_clock_now() - t0 >= MS(40));
    tp_http_client_destroy(r.c);
    kill(pid, SIGTERM);
    assert_true(read_line(out[0], line, sizeof line, 5000));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    print_message("%s\n", line);
    assert_non_null(strstr(line, "\"tool\": \"tidepool-chaos\""));
    assert_non_null(strstr(line, "\"accepted\": 1,"));
    close(out[0]);
    close(err[0]);
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    const struct CMUnitTest tests[] = {
#define BOTH_WAYS(t)                                                                       \
    cmocka_unit_test_prestate(t, (void *)&BLOCKING), cmocka_unit_test_prestate(t, (void *)&ENGINE)
        BOTH_WAYS(test_latency),
        BOTH_WAYS(test_reset_mid_body),
        BOTH_WAYS(test_idle_connections_reset),
        BOTH_WAYS(test_half_open_pooled_connection),
        BOTH_WAYS(test_refused),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
