/* test_metrics_scrape.c: the embedded exporter over real HTTP. It serves /metrics and
 * /debug/pools on 127.0.0.1 (port 0: a free one), 404 elsewhere, 405 for other methods;
 * then a real Prometheus server, started here with a temporary configuration and
 * storage, scrapes it every second, and its query API must return the values the pool
 * holds, before and after the pool changes. Everything listens on loopback only. Exits
 * 77 (skipped) without the prometheus binary (Debian package prometheus) or without
 * libmicrohttpd in the build. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/metrics.h>
#include <tidepool/tidepool.h>

#include "support/fake_connector.h"
#include "support/metrics_util.h"
#include "support/test_util.h"

extern char **environ;

#define KEY_A "http://127.0.0.1:8080"

typedef struct fx {
    fake_connector f;
    tp_pool *p;
    tp_metrics *m;
    tp_metrics_exporter *e;
    int port;
} fx;

static int setup(void **state)
{
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    tp_pool_options o;
    fake_pool_options(&x->f, &o);
    o.maintenance_thread = false;
    x->p = tu_pool_create(&o);
    tp_errinfo err;
    if (tp_metrics_create(NULL, &x->m, &err) != TP_OK ||
        tp_metrics_register(x->m, "scrape", x->p, &err) != TP_OK)
        return -1;
    tp_err rc = tp_metrics_serve(x->m, "127.0.0.1:0", &x->e, &err);
    if (rc != TP_OK) {
        print_error("tp_metrics_serve: %s: %s\n", tp_err_name(rc), err.msg);
        return -1;
    }
    x->port = tp_metrics_exporter_port(x->e);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    tp_metrics_exporter_stop(x->e);
    tp_metrics_destroy(x->m);
    tp_pool_destroy(x->p);
    fake_destroy(&x->f);
    free(x);
    return 0;
}

/* n leases of KEY_A, all held at once: n opens. */
static void open_n(fx *x, int n)
{
    tp_conn *c[8];
    for (int i = 0; i < n; i++)
        c[i] = tu_acquire(x->p, KEY_A, MS(1000));
    for (int i = 0; i < n; i++)
        tp_conn_release(c[i], 0);
}

static void test_exporter_routes(void **state)
{
    fx *x = *state;
    assert_true(x->port > 0);
    open_n(x, 2);
    char *head = NULL, *body = NULL, ct[128];
    assert_int_equal(mu_http(x->port, "GET", "/metrics", NULL, 5000, &head, &body), 200);
    assert_true(mu_header(head, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "text/plain; version=0.0.4; charset=utf-8");
    double v = 0;
    assert_true(mu_prom_value(body, "tidepool_opens_total{pool=\"scrape\",key=\"" KEY_A "\"}", &v));
    assert_true(v == 2);
    free(head);
    free(body);

    assert_int_equal(mu_http(x->port, "GET", "/debug/pools", NULL, 5000, &head, &body), 200);
    assert_true(mu_header(head, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/json");
    assert_non_null(strstr(body, "\"scrape\":{\"keys_live\":1"));
    assert_non_null(strstr(body, "\"opens\":2"));
    free(head);
    free(body);

    assert_int_equal(mu_http(x->port, "GET", "/nope", NULL, 5000, NULL, NULL), 404);
    assert_int_equal(mu_http(x->port, "GET", "/metrics/x", NULL, 5000, NULL, NULL), 404);
    assert_int_equal(mu_http(x->port, "POST", "/metrics", "x=1", 5000, &head, NULL), 405);
    assert_true(mu_header(head, "Allow", ct, sizeof ct));
    assert_string_equal(ct, "GET, HEAD");
    free(head);
    assert_int_equal(mu_http(x->port, "DELETE", "/debug/pools", NULL, 5000, NULL, NULL), 405);
    assert_int_equal(mu_http(x->port, "HEAD", "/metrics", NULL, 5000, NULL, &body), 200);
    assert_string_equal(body, "");
    free(body);

    /* The port is taken: a second exporter on it fails with the reason. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", x->port);
    tp_metrics_exporter *e2 = NULL;
    tp_errinfo err;
    assert_int_equal(tp_metrics_serve(x->m, addr, &e2, &err), TP_ESYS);
    assert_null(e2);
    print_message("second exporter on the same port: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "could not start"));
}

/* A running Prometheus: its pid and temporary directory. */
typedef struct prom {
    pid_t pid;
    char dir[256];
    int port;
} prom;

static void prom_start(prom *pr, const char *bin, int target_port)
{
    assert_int_equal(mu_tmpdir(pr->dir, sizeof pr->dir), 0);
    pr->port = mu_free_port();
    assert_true(pr->port > 0);
    char cfg[4096], path[512], data[512], log[512], listen[64], cfg_arg[600], data_arg[600];
    snprintf(cfg, sizeof cfg,
             "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
             "scrape_configs:\n  - job_name: tidepool\n    static_configs:\n"
             "      - targets: ['127.0.0.1:%d']\n",
             target_port);
    snprintf(path, sizeof path, "%s/prometheus.yml", pr->dir);
    assert_int_equal(mu_write_file(path, cfg, strlen(cfg)), 0);
    snprintf(data, sizeof data, "%s/data", pr->dir);
    snprintf(log, sizeof log, "%s/prometheus.log", pr->dir);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", pr->port);
    snprintf(cfg_arg, sizeof cfg_arg, "--config.file=%s", path);
    snprintf(data_arg, sizeof data_arg, "--storage.tsdb.path=%s", data);
    char *argv[] = {(char *)bin, cfg_arg, data_arg, listen, "--log.level=warn", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&pr->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
}

/* Stops Prometheus (TERM, then KILL after 10 s), prints its log if asked, removes the
 * directory. */
static void prom_stop(prom *pr, bool show_log)
{
    if (pr->pid > 0) {
        kill(pr->pid, SIGTERM);
        int st, waited = 0;
        while (waitpid(pr->pid, &st, WNOHANG) == 0) {
            if (++waited == 1000)
                kill(pr->pid, SIGKILL);
            tu_sleep_ms(10);
        }
        pr->pid = 0;
    }
    if (show_log) {
        char log[512];
        snprintf(log, sizeof log, "%s/prometheus.log", pr->dir);
        char *text = mu_read_file(log);
        print_message("prometheus log:\n%s\n", text != NULL ? text : "(none)");
        free(text);
    }
    mu_rmtree(pr->dir);
}

/* Sum of the values of an instant query's result, and the number of series; -1 if the
 * query failed (Prometheus not up yet). Values look like "value":[1700000000.1,"3"]. */
static int query_sum(int port, const char *query, double *sum)
{
    char path[512];
    snprintf(path, sizeof path, "/api/v1/query?query=%s", query);
    char *body = NULL;
    int status = mu_http(port, "GET", path, NULL, 2000, NULL, &body);
    int n = -1;
    if (status == 200 && body != NULL && strstr(body, "\"status\":\"success\"") != NULL) {
        n = 0;
        *sum = 0;
        for (const char *p = strstr(body, "\"value\":["); p != NULL;
             p = strstr(p + 1, "\"value\":[")) {
            const char *q = strstr(p, ",\"");
            if (q == NULL)
                break;
            *sum += strtod(q + 2, NULL);
            n++;
        }
    }
    free(body);
    return n;
}

/* Polls query until it sums to want (up to timeout_ms); returns whether it did. */
static bool wait_for(int port, const char *query, double want, int timeout_ms, double *last)
{
    int64_t end = tu_now_ns() + MS(timeout_ms);
    *last = -1;
    while (tu_now_ns() < end) {
        double s = 0;
        if (query_sum(port, query, &s) > 0) {
            *last = s;
            if (s == want)
                return true;
        }
        tu_sleep_ms(250);
    }
    return false;
}

static void test_prometheus_scrapes(void **state)
{
    fx *x = *state;
    char bin[512];
    if (!mu_which("prometheus", bin, sizeof bin)) {
        print_message("prometheus not on PATH (Debian package prometheus): skipped\n");
        skip();
    }
    open_n(x, 3);
    tp_stats st = tu_pool_stats(x->p);
    assert_int_equal(st.opens, 3);

    prom pr = {0};
    prom_start(&pr, bin, x->port);
    double got = -1;
    /* tidepool_opens_total{key=KEY_A}, URL-encoded; and the family summed over keys. */
    const char *one = "tidepool_opens_total%7Bpool%3D%22scrape%22%2Ckey%3D%22http%3A%2F%2F127."
                      "0.0.1%3A8080%22%7D";
    bool ok = wait_for(pr.port, "tidepool_opens_total", (double)st.opens, 20000, &got);
    if (ok)
        ok = wait_for(pr.port, one, (double)st.opens, 5000, &got);
    if (!ok) {
        prom_stop(&pr, true);
        fail_msg("Prometheus never returned tidepool_opens_total = %llu (last %g)",
                 (unsigned long long)st.opens, got);
    }

    /* The pool changes; the next scrapes show it. */
    open_n(x, 5);
    st = tu_pool_stats(x->p);
    assert_int_equal(st.opens, 5);
    ok = wait_for(pr.port, "tidepool_opens_total", (double)st.opens, 15000, &got);
    if (ok)
        ok = wait_for(pr.port, "tidepool_acquires_total", (double)st.acquires, 5000, &got);
    if (ok)
        ok = wait_for(pr.port, "up", 1, 5000, &got);
    prom_stop(&pr, !ok);
    if (!ok)
        fail_msg("Prometheus did not follow the pool (last %g)", got);
}

int main(void)
{
    tu_watchdog(150);
    signal(SIGPIPE, SIG_IGN);
    if (!mu_have_exporter())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exporter_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prometheus_scrapes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
