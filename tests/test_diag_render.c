/* test_diag_render.c: the doctor's findings and renderings on synthetic reports, with
 * exact numbers: which rule fires at which severity, the diagnosis and remedy texts, the
 * ordering of findings and destinations, the --top cut, the text table, and JSON that a
 * real parser (python3's json, when installed) accepts with the expected values; then
 * the JSON of a live report of this host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "diag/diag_internal.h"

#define RANGE 28232

/* A destination with the derived fields computed as aggregate.c does. */
static void dest(tp_diag_report *r, const char *ep, uint32_t est, uint32_t tw, uint32_t cw,
                 uint32_t syn, double rate)
{
    tp_diag_dest *d = &r->dests[r->ndests++];
    memset(d, 0, sizeof *d);
    assert_int_equal(tp_diag_endpoint_parse(ep, &d->remote), TP_OK);
    d->states[TP_DIAG_ESTABLISHED] = est;
    d->states[TP_DIAG_TIME_WAIT] = tw;
    d->states[TP_DIAG_CLOSE_WAIT] = cw;
    d->states[TP_DIAG_SYN_SENT] = syn;
    d->sockets = est + tw + cw + syn;
    d->ports_used = d->sockets;
    d->ports_timewait = tw;
    d->ports_open = d->sockets - tw;
    d->headroom = tp_diag_port_headroom(r->host.port_range, d->ports_used);
    d->ports_used_pct = 100.0 * d->ports_used / r->host.port_range;
    d->tw_reuse_applies = r->host.tw_reuse == 2 && tp_diag_endpoint_is_loopback(&d->remote);
    d->tw_hold_s = d->tw_reuse_applies ? 1.0 : 60.0;
    d->close_rate = rate;
    d->close_rate_sampled = true;
    d->critical_rate = tp_diag_critical_rate(r->host.port_range, d->ports_open, d->tw_hold_s);
    d->exhaustion_s =
        tp_diag_exhaustion_seconds(r->host.port_range, d->ports_open, tw, rate, d->tw_hold_s);
    d->severity = -1;
}

static tp_diag_report *synthetic(void)
{
    tp_diag_report *r = calloc(1, sizeof *r);
    assert_non_null(r);
    tp_diag_options_init(&r->opts);
    tp_diag_host *h = &r->host;
    h->port_lo = 32768;
    h->port_hi = 60999;
    h->port_range = RANGE;
    h->tw_reuse = 2;
    h->tw_reuse_delay_ms = 1000;
    h->fin_timeout_s = 60;
    h->max_tw_buckets = 131072;
    h->source = TP_DIAG_SOURCE_NETLINK;
    h->interval_s = 2.0;
    r->dests = calloc(16, sizeof *r->dests);
    assert_non_null(r->dests);
    dest(r, "10.0.0.5:5432", 100, 12000, 0, 0, 500); /* TIME_WAIT, exhaustion in 32 s */
    dest(r, "10.0.0.6:6379", 4, 0, 20, 0, 0);        /* CLOSE_WAIT, critical */
    dest(r, "10.0.0.7:443", 10, 0, 0, 0, 0);         /* retransmissions */
    r->dests[2].segs_out = 10000;
    r->dests[2].total_retrans = 300;
    r->dests[2].rtt_samples = 10;
    r->dests[2].rtt_avg_us = 1500;
    r->dests[2].rtt_max_us = 3000;
    dest(r, "10.0.0.8:80", 0, 0, 0, 5, 0);         /* SYN_SENT */
    dest(r, "127.0.0.1:8080", 0, 20000, 0, 0, -1); /* loopback: tcp_tw_reuse=2 covers it */
    dest(r, "127.0.0.2:8081", 0, 150, 0, 0, 0);    /* churn: info */
    dest(r, "10.0.0.9:3306", 24000, 0, 0, 0, 0);   /* ports, critical */
    dest(r, "10.0.0.10:11211", 3, 0, 0, 0, 0);     /* healthy */
    h->dests = (uint32_t)r->ndests;
    assert_int_equal(tp__diag_findings(r), TP_OK);
    return r;
}

static void expect(const tp_diag_report *r, size_t i, int sev, const char *kind, const char *ep)
{
    const tp_diag_finding *f = tp_diag_report_finding(r, i);
    assert_non_null(f);
    char buf[TP_DIAG_ENDPOINT_STRLEN];
    tp_diag_endpoint_format(f->has_dest ? &f->dest : NULL, buf, sizeof buf);
    if ((int)f->severity != sev || strcmp(f->kind, kind) != 0 || strcmp(buf, ep) != 0) {
        print_error("finding %zu: %s %s %s, want %s %s %s\n", i,
                    tp_diag_severity_name((int)f->severity), f->kind, buf,
                    tp_diag_severity_name(sev), kind, ep);
        fail();
    }
}

static void test_findings(void **state)
{
    (void)state;
    tp_diag_report *r = synthetic();
    assert_int_equal(tp_diag_report_finding_count(r), 8);
    /* Most severe first; within a severity, the destination under most pressure first. */
    expect(r, 0, TP_DIAG_CRITICAL, "ports", "10.0.0.9:3306");
    expect(r, 1, TP_DIAG_CRITICAL, "time_wait", "10.0.0.5:5432");
    expect(r, 2, TP_DIAG_CRITICAL, "exhaustion", "10.0.0.5:5432");
    expect(r, 3, TP_DIAG_CRITICAL, "close_wait", "10.0.0.6:6379");
    expect(r, 4, TP_DIAG_WARNING, "retransmissions", "10.0.0.7:443");
    expect(r, 5, TP_DIAG_WARNING, "syn_sent", "10.0.0.8:80");
    expect(r, 6, TP_DIAG_INFO, "time_wait", "127.0.0.1:8080");
    expect(r, 7, TP_DIAG_INFO, "time_wait", "127.0.0.2:8081");

    const tp_diag_finding *f = tp_diag_report_finding(r, 1);
    assert_string_equal(f->diagnosis, "TIME_WAIT pile-up towards 10.0.0.5:5432: 12000 sockets, "
                                      "42.5 % of the port range, 500.0 closes/s");
    assert_string_equal(f->remedy, "reuse connections (raise the pool's max_idle_per_key to its "
                                   "max_per_key), or set net.ipv4.tcp_tw_reuse=1 (now 2: loopback "
                                   "only) for outgoing connections");
    assert_string_equal(tp_diag_report_finding(r, 2)->diagnosis,
                        "at 500.0 closes/s the local ports towards 10.0.0.5:5432 run out in about "
                        "32 s (they sustain 469 closes/s)");
    assert_non_null(strstr(tp_diag_report_finding(r, 3)->diagnosis,
                           "20 sockets towards 10.0.0.6:6379 in CLOSE_WAIT: the peer closed but "
                           "a local process holds the socket"));
    assert_non_null(
        strstr(tp_diag_report_finding(r, 0)->diagnosis, "24000 of 28232 in use (85.0 %)"));
    assert_non_null(
        strstr(tp_diag_report_finding(r, 4)->diagnosis, "300 of 10000 segments (3.00 %)"));
    assert_non_null(strstr(tp_diag_report_finding(r, 6)->remedy, "ports are safe"));

    /* Destinations: worst first, then by ports used; the healthy one last. */
    static const char *const order[] = {"10.0.0.9:3306",  "10.0.0.5:5432",  "10.0.0.6:6379",
                                        "10.0.0.7:443",   "10.0.0.8:80",    "127.0.0.1:8080",
                                        "127.0.0.2:8081", "10.0.0.10:11211"};
    assert_int_equal(tp_diag_report_dest_count(r), 8);
    for (size_t i = 0; i < 8; i++) {
        char buf[TP_DIAG_ENDPOINT_STRLEN];
        assert_string_equal(
            tp_diag_endpoint_format(&tp_diag_report_dest(r, i)->remote, buf, sizeof buf), order[i]);
    }
    assert_int_equal(tp_diag_report_dest(r, 7)->severity, -1);
    tp_diag_report_destroy(r);
}

static void test_host_findings(void **state)
{
    (void)state;
    tp_diag_report *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->host.port_lo = 1000;
    r->host.port_hi = 1999;
    r->host.port_range = 1000;
    r->host.max_tw_buckets = 1000;
    r->host.timewait = 900;
    assert_int_equal(tp__diag_findings(r), TP_OK);
    assert_int_equal(tp_diag_report_finding_count(r), 2);
    expect(r, 0, TP_DIAG_WARNING, "tw_buckets", "-");
    expect(r, 1, TP_DIAG_INFO, "port_range", "-");
    tp_diag_report_destroy(r);
}

/* Runs python3 on a JSON file with a check script; returns its exit status, or -1 when
 * python3 is not installed. */
static int python_check(const char *json, const char *script)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return -1;
    char path[] = "/tmp/tp_diag_json_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "python3 -c '%s' < %s", script, path);
    int st = system(cmd);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Without python3: the document is one object with balanced brackets outside strings. */
static void structural_check(const char *json)
{
    int depth = 0;
    bool in_str = false;
    assert_int_equal(json[0], '{');
    for (const char *p = json; *p; p++) {
        if (in_str) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_str = false;
            continue;
        }
        if (*p == '"')
            in_str = true;
        else if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            assert_true(--depth >= 0);
    }
    assert_false(in_str);
    assert_int_equal(depth, 0);
}

static void test_json_synthetic(void **state)
{
    (void)state;
    tp_diag_report *r = synthetic();
    /* Text that needs escaping must survive the round trip. */
    snprintf(r->findings[0].remedy, sizeof r->findings[0].remedy, "say \"hi\"\\\n\tend");
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(tp_diag_report_json(r, 3, &json, &len), TP_OK);
    assert_int_equal(strlen(json), len);
    structural_check(json);
    int st = python_check(
        json, "import json,sys; d=json.load(sys.stdin); "
              "assert d[\"schema\"]==\"tidepool.doctor/1\"; assert d[\"source\"]==\"netlink\"; "
              "assert d[\"pid\"] is None and d[\"interval_s\"]==2.0; "
              "assert d[\"host\"][\"port_range\"][\"ports\"]==28232; "
              "assert d[\"destinations_shown\"]==3 and len(d[\"destinations\"])==3; "
              "a=d[\"destinations\"][1]; assert a[\"dest\"]==\"10.0.0.5:5432\"; "
              "assert a[\"states\"]=={\"ESTABLISHED\":100,\"TIME_WAIT\":12000}; "
              "assert a[\"exhaustion_s\"]==32.264 and a[\"ports\"][\"headroom\"]==16132; "
              "assert a[\"rtt_us\"][\"avg\"] is None and a[\"severity\"]==\"critical\"; "
              "assert len(d[\"findings\"])==8; f=d[\"findings\"][0]; "
              "assert f[\"remedy\"]==\"say \\\"hi\\\"\\\\\\n\\tend\", f[\"remedy\"]; "
              "assert d[\"findings\"][6][\"severity\"]==\"info\"");
    if (st < 0)
        print_message("python3 not installed: structural check only\n");
    else
        assert_int_equal(st, 0);
    tp_diag_free(json);

    /* The unknown close rate of the loopback destination is null, never NaN. */
    assert_int_equal(tp_diag_report_json(r, 0, &json, NULL), TP_OK);
    assert_null(strstr(json, ":nan"));
    assert_null(strstr(json, ":-nan"));
    assert_null(strstr(json, ":inf"));
    assert_null(strstr(json, ":-inf"));
    assert_non_null(strstr(json, "\"close_rate_per_s\":null"));
    tp_diag_free(json);
    tp_diag_report_destroy(r);
}

static void test_text_synthetic(void **state)
{
    (void)state;
    tp_diag_report *r = synthetic();
    char *text = NULL;
    assert_int_equal(tp_diag_report_text(r, 3, &text, NULL), TP_OK);
    static const char *const want[] = {"ports 32768-60999 (28232 usable)",
                                       "tcp_tw_reuse=2 (loopback only",
                                       "DESTINATION",
                                       "10.0.0.9:3306",
                                       "10.0.0.5:5432",
                                       "... and 5 more destinations (--top)",
                                       "findings:",
                                       "critical",
                                       "remedy: reuse connections",
                                       "TIME_WAIT arrivals over the last 2.0 s"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(text, want[i]) == NULL) {
            print_error("missing \"%s\" in:\n%s\n", want[i], text);
            fail();
        }
    /* Only the top 3 destinations in the table, but every warning and critical finding,
     * and the 2 info findings (<= top). */
    assert_null(strstr(text, "10.0.0.7:443 "));
    assert_non_null(strstr(text, "retransmissions towards 10.0.0.7:443"));
    assert_non_null(strstr(text, "pile-up towards 127.0.0.1:8080"));
    assert_non_null(strstr(text, "pile-up towards 127.0.0.2:8081"));
    assert_null(strstr(text, "more info findings"));
    tp_diag_free(text);
    /* With top 1: one info finding, the other counted; the warnings all there. */
    assert_int_equal(tp_diag_report_text(r, 1, &text, NULL), TP_OK);
    assert_non_null(strstr(text, "pile-up towards 127.0.0.1:8080"));
    assert_null(strstr(text, "pile-up towards 127.0.0.2:8081"));
    assert_non_null(strstr(text, "... and 1 more info findings (--top 0 shows all)"));
    assert_non_null(strstr(text, "waiting for the server's SYN-ACK"));
    tp_diag_free(text);
    tp_diag_report_destroy(r);
}

static void test_json_live(void **state)
{
    (void)state;
    tp_diag_report *r = NULL;
    assert_int_equal(tp_diag_collect(NULL, NULL, &r, NULL), TP_OK);
    char *json = NULL;
    assert_int_equal(tp_diag_report_json(r, 0, &json, NULL), TP_OK);
    structural_check(json);
    int st = python_check(json, "import json,sys; d=json.load(sys.stdin); "
                                "assert d[\"totals\"][\"destinations\"]==len(d[\"destinations\"])");
    assert_true(st <= 0);
    tp_diag_free(json);
    tp_diag_report_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_findings),       cmocka_unit_test(test_host_findings),
        cmocka_unit_test(test_json_synthetic), cmocka_unit_test(test_text_synthetic),
        cmocka_unit_test(test_json_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
