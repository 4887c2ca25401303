/* cmd_doctor.c: `tidepool doctor`: the host's TCP sockets per destination (states, RTT,
 * retransmissions, port headroom, time to port exhaustion) and findings with remedies.
 * A thin shell over include/tidepool/diag.h: it parses options, takes samples (two for
 * a measured close rate), prints the library's text or JSON rendering, and repeats under
 * --watch until interrupted. With --trace it also runs the kernel trace of
 * include/tidepool/ktrace.h for that long (resets by reason, closes by process, failed
 * connects, retransmission bursts) and adds it to the report; where tracing is not
 * possible it says why and reports what sock_diag shows. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tidepool/diag.h"
#include "tidepool/clock.h"
#include "tidepool/ktrace.h"

#include "cli.h"

#define DEFAULT_WATCH_S 2.0
#define DEFAULT_TOP 20

typedef struct doctor_args {
    tp_diag_options opts;
    bool json;
    bool watch;
    double every_s;    /* --watch period */
    double interval_s; /* one-shot: seconds between the two samples, 0 = one sample */
    int64_t count;     /* refreshes under --watch, 0 = until interrupted */
    int64_t top;
    double trace_s; /* --trace: seconds of kernel tracing, 0 = none */
    int64_t ring;   /* --ring: the trace's ring buffer in bytes, 0 = default */
} doctor_args;

/* Set by SIGINT/SIGTERM so that --watch ends between samples and frees what it holds. */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tidepool doctor [options]\n\n"
            "Reads this host's TCP sockets (NETLINK_SOCK_DIAG, as ss does) and reports per\n"
            "destination ip:port: sockets by state, RTT and retransmissions, local port\n"
            "headroom and time to exhaustion, then findings with remedies.\n\n"
            "options:\n"
            "  --pid PID          only the sockets of process PID, plus the TIME_WAIT\n"
            "                     entries (which have no owner) towards destinations it\n"
            "                     holds sockets to; with --watch or --interval also those\n"
            "                     it held in an earlier sample (short connections)\n"
            "  --dest IP:PORT     only this destination ([v6]:port for IPv6)\n"
            "  --top N            destinations shown (default %d, 0 = all)\n"
            "  --watch [SECONDS]  refresh every SECONDS (default %.0f) with close rates\n"
            "                     measured since the previous sample, until interrupted\n"
            "  --count N          with --watch: stop after N refreshes\n"
            "  --interval SECONDS without --watch: take two samples SECONDS apart to measure\n"
            "                     close rates (default: estimate them from TIME_WAIT ages)\n"
            "  --json             one JSON document per sample\n"
            "  --inbound          also list connections accepted by local listeners\n"
            "  --procfs           read /proc/net/tcp{,6} instead of netlink\n"
            "  --trace DURATION   also trace the kernel's TCP events (eBPF) for DURATION\n"
            "                     (\"10s\", \"1m\"): resets sent by the kernel's reason and\n"
            "                     received with the idle time before them, active closes\n"
            "                     (TIME_WAIT) per process, failed connects by errno,\n"
            "                     retransmission bursts; needs root (or CAP_BPF and\n"
            "                     CAP_PERFMON) and kernel BTF, else says why and goes on\n"
            "                     without; with --pid and --dest it keeps their events only\n"
            "  --ring BYTES       the trace's ring buffer (default 8 MiB)\n",
            DEFAULT_TOP, DEFAULT_WATCH_S);
}

/* Parses argv into a; returns -1 to continue, else the exit status (help, usage error). */
static int parse_args(int argc, char **argv, doctor_args *a)
{
    memset(a, 0, sizeof *a);
    tp_diag_options_init(&a->opts);
    a->every_s = DEFAULT_WATCH_S;
    a->top = DEFAULT_TOP;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(o, "--json") == 0) {
            a->json = true;
        } else if (strcmp(o, "--inbound") == 0) {
            a->opts.include_inbound = true;
        } else if (strcmp(o, "--procfs") == 0) {
            a->opts.source = TP_DIAG_SOURCE_PROCFS;
        } else if (strcmp(o, "--watch") == 0) {
            a->watch = true;
            /* The period is optional: take the next word only if it is a duration. */
            if (v != NULL && v[0] != '-' && parse_duration_s(v, &a->every_s)) {
                i++;
                if (a->every_s <= 0) {
                    fprintf(stderr, "tidepool doctor: --watch: the period must be > 0\n");
                    return 2;
                }
            }
        } else if (strcmp(o, "--pid") == 0 && v != NULL && parse_count(v, &n) && n > 0 &&
                   n <= 0x7fffffff) {
            a->opts.pid = (int)n;
            i++;
        } else if (strcmp(o, "--count") == 0 && v != NULL && parse_count(v, &n) && n > 0) {
            a->count = n;
            a->watch = true;
            i++;
        } else if (strcmp(o, "--top") == 0 && v != NULL && parse_count(v, &n)) {
            a->top = n;
            i++;
        } else if (strcmp(o, "--interval") == 0 && v != NULL &&
                   parse_duration_s(v, &a->interval_s)) {
            i++;
        } else if (strcmp(o, "--trace") == 0 && v != NULL && parse_duration_s(v, &a->trace_s) &&
                   a->trace_s > 0) {
            i++;
        } else if (strcmp(o, "--ring") == 0 && v != NULL && parse_count(v, &n) && n >= 4096) {
            a->ring = n;
            i++;
        } else if (strcmp(o, "--dest") == 0 && v != NULL) {
            if (tp_diag_endpoint_parse(v, &a->opts.dest) != TP_OK) {
                fprintf(stderr, "tidepool doctor: --dest %s: expected IP:PORT or [IPv6]:PORT\n", v);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "tidepool doctor: bad or incomplete option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (a->trace_s > 0 && a->watch) {
        fprintf(stderr, "tidepool doctor: --trace and --watch do not go together\n");
        return 2;
    }
    return -1;
}

/* Sleeps s seconds unless a signal asks to stop. */
static void pause_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (!g_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Prints one sample in the chosen format; false (after a message) on error. */
static bool print_report(const doctor_args *a, const tp_diag_report *r, int64_t sample)
{
    char *text = NULL;
    tp_err rc = a->json ? tp_diag_report_json(r, (size_t)a->top, &text, NULL)
                        : tp_diag_report_text(r, (size_t)a->top, &text, NULL);
    if (rc != TP_OK) {
        fprintf(stderr, "tidepool doctor: rendering failed: %s\n", tp_strerror(rc));
        return false;
    }
    if (a->watch && !a->json) {
        /* Redraw in place on a terminal; separate samples in a pipe or a file. */
        if (isatty(STDOUT_FILENO))
            fputs("\033[H\033[2J", stdout);
        else if (sample > 1)
            fputs("\n", stdout);
        printf("--- sample %lld, every %.1f s (Ctrl-C to stop) ---\n", (long long)sample,
               a->every_s);
    }
    fputs(text, stdout);
    fflush(stdout);
    tp_diag_free(text);
    return true;
}

static tp_diag_report *collect(const doctor_args *a, const tp_diag_report *prev)
{
    tp_diag_report *r = NULL;
    tp_errinfo err;
    tp_errinfo_clear(&err);
    tp_err rc = tp_diag_collect(&a->opts, prev, &r, &err);
    if (rc != TP_OK)
        fprintf(stderr, "tidepool doctor: %s\n", err.msg[0] ? err.msg : tp_strerror(rc));
    return r;
}

/* Starts the kernel trace; NULL after saying why on stderr when it cannot run here. */
static tp_ktrace *trace_start(const doctor_args *a)
{
    tp_ktrace_options o;
    tp_ktrace_options_init(&o);
    o.pid = a->opts.pid;
    o.dest = a->opts.dest;
    if (a->ring > 0)
        o.ring_bytes = (size_t)a->ring;
    tp_ktrace *t = NULL;
    tp_errinfo err;
    tp_errinfo_clear(&err);
    tp_err rc = tp_ktrace_start(&o, &t, &err);
    if (rc != TP_OK) {
        fprintf(stderr, "tidepool doctor: --trace: %s; reporting what sock_diag shows\n",
                err.msg[0] ? err.msg : tp_strerror(rc));
        return NULL;
    }
    return t;
}

/* Traces for a->trace_s seconds (or until interrupted), then stops the trace. */
static bool trace_run(const doctor_args *a, tp_ktrace *t)
{
    int64_t end = tp_clock_now() + (int64_t)(a->trace_s * 1e9);
    tp_errinfo err;
    tp_errinfo_clear(&err);
    /* On stderr, so that the report on stdout stays one document; also tells a script
     * driving doctor that the program is attached. */
    fprintf(stderr, "tidepool doctor: tracing TCP events for %.1f s (Ctrl-C stops early)\n",
            a->trace_s);
    for (int64_t now = tp_clock_now(); now < end && !g_stop; now = tp_clock_now()) {
        int64_t left_ms = (end - now) / 1000000;
        int wait_ms = left_ms < 100 ? (int)left_ms : 100;
        if (tp_ktrace_poll(t, wait_ms, &err) != TP_OK) {
            fprintf(stderr, "tidepool doctor: --trace: %s\n", err.msg);
            break;
        }
    }
    if (tp_ktrace_stop(t, &err) != TP_OK) {
        fprintf(stderr, "tidepool doctor: --trace: %s\n", err.msg);
        return false;
    }
    return true;
}

/* One sample after the trace, printed with it. */
static int print_traced(const doctor_args *a, tp_ktrace *t)
{
    tp_diag_report *r = collect(a, NULL);
    if (r == NULL)
        return 1;
    char *text = NULL;
    tp_err rc;
    if (a->json) {
        rc = tp_ktrace_json(t, r, &text, NULL);
    } else {
        rc = tp_diag_report_text(r, (size_t)a->top, &text, NULL);
        if (rc == TP_OK) {
            fputs(text, stdout);
            tp_diag_free(text);
            text = NULL;
            rc = tp_ktrace_text(t, (size_t)a->top, &text, NULL);
        }
    }
    tp_diag_report_destroy(r);
    if (rc != TP_OK) {
        fprintf(stderr, "tidepool doctor: rendering failed: %s\n", tp_strerror(rc));
        return 1;
    }
    fputs(text, stdout);
    fflush(stdout);
    tp_diag_free(text);
    return 0;
}

int cmd_doctor(int argc, char **argv)
{
    doctor_args a;
    int status = parse_args(argc, argv, &a);
    if (status >= 0)
        return status;

    g_stop = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (a.trace_s > 0) {
        tp_ktrace *t = trace_start(&a);
        if (t != NULL) {
            status = trace_run(&a, t) ? print_traced(&a, t) : 1;
            tp_ktrace_destroy(t);
            return status;
        }
        /* Fall back: the sockets as sock_diag sees them, over the trace's span. */
        a.interval_s = a.trace_s;
    }
    tp_diag_report *prev = NULL;
    if (!a.watch && a.interval_s > 0) {
        if ((prev = collect(&a, NULL)) == NULL)
            return 1;
        pause_s(a.interval_s);
    }
    status = 0;
    for (int64_t sample = 1;; sample++) {
        tp_diag_report *r = collect(&a, prev);
        if (r == NULL) {
            status = 1;
            break;
        }
        tp_diag_report_destroy(prev);
        prev = r;
        if (!print_report(&a, r, sample)) {
            status = 1;
            break;
        }
        if (!a.watch || g_stop || (a.count > 0 && sample >= a.count))
            break;
        pause_s(a.every_s);
        if (g_stop)
            break;
    }
    tp_diag_report_destroy(prev);
    return status;
}
