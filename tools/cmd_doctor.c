/* cmd_doctor.c: `tidepool doctor`: the host's TCP sockets per destination (states, RTT,
 * retransmissions, port headroom, time to port exhaustion) and findings with remedies.
 * A thin shell over include/tidepool/diag.h: it parses options, takes samples (two for
 * a measured close rate), prints the library's text or JSON rendering, and repeats under
 * --watch until interrupted. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tidepool/diag.h"

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
            "  --procfs           read /proc/net/tcp{,6} instead of netlink\n",
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
