/* cmd_chaos.c: `tidepool chaos`: the fault proxy of include/tidepool/chaos.h from the
 * command line. Parses the faults, runs the proxy until SIGINT or SIGTERM, then prints
 * its counters (one JSON object with --json). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidepool/alloc.h"
#include "tidepool/chaos.h"
#include "tidepool/clock.h"

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tidepool chaos --listen HOST:PORT --upstream HOST:PORT [faults] [--json]\n"
            "       tidepool chaos run SCENARIO.json [--url URL] [--json]\n\n"
            "A TCP proxy that forwards every connection to the upstream, with faults per\n"
            "direction and per connection. Without a fault it forwards bytes unchanged.\n"
            "It runs until SIGINT or SIGTERM, then prints its counters.\n\n"
            "faults:\n"
            "  --latency DUR       delay each direction's data (a request and its response\n"
            "                      each pay it), e.g. 50ms\n"
            "  --jitter DUR        vary the latency by up to DUR either way (order kept)\n"
            "  --bandwidth RATE    bytes per second per connection and direction, e.g.\n"
            "                      1MB/s (K, M, G are powers of 1024)\n"
            "  --slice BYTES       write at most BYTES at a time (small segments)\n"
            "  --reset-after N     reset both sides after N bytes (10KB) or a time (2s)\n"
            "  --limit-data BYTES  close both sides (FIN) after BYTES\n"
            "  --slow-close DUR    pass a FIN on DUR late\n"
            "  --blackhole         forward nothing: data is read and dropped\n"
            "  --half-open         the peer vanishes: nothing more either way, no FIN, no RST\n"
            "  --stop-reading      stop reading from the sender: its send buffer fills\n"
            "  --refuse            refuse connects (the listening socket is closed)\n"
            "  --accept-delay DUR  accept one connection per DUR; the kernel's queue holds\n"
            "                      one, later connects get no SYN-ACK (connect timeouts)\n"
            "  --direction D       up (client to upstream), down or both (default both)\n"
            "  --probability P     fault a connection with probability P (default 1)\n"
            "  --seed N            seed of the random draws (replays a run)\n"
            "  --schedule FILE     a timeline of faults (JSON), from the start, e.g.\n"
            "                      [{\"at\":\"5s\",\"reset_all\":true},\n"
            "                       {\"at\":\"8s\",\"for\":\"3s\",\"latency\":\"200ms\"},\n"
            "                       {\"at\":\"12s\",\"down\":\"2s\"}]\n"
            "options:\n"
            "  --control HOST:PORT a JSON API on loopback to change faults while it runs:\n"
            "                      GET /counters, PUT or DELETE /fault, POST or DELETE\n"
            "                      /schedule (bodies as in --schedule)\n"
            "  --json              print the counters as one JSON object\n");
}

/* HOST:PORT, [V6]:PORT. host is a copy the caller frees. */
static bool parse_hostport(const char *s, char **host, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0')
        return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535)
        return false;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
        h++, n -= 2;
    *host = strndup(h, n);
    *port = (uint16_t)p;
    return *host != NULL;
}

typedef struct chaos_args {
    tp_chaos_options o;
    char *listen_host, *upstream_host, *control_host;
    tp_chaos_step *steps; /* --schedule (tp_free) */
    size_t nsteps;
    bool json;
} chaos_args;

static int bad(const char *opt, const char *v)
{
    fprintf(stderr, "tidepool chaos: %s: bad value \"%s\" (see --help)\n", opt,
            v != NULL ? v : "");
    return 2;
}

/* Reads a whole file (the schedule); NULL with errno on failure. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    return buf;
}

/* The fault options: flags take no value; the rest name a field of tp_chaos_fault_set. */
static const char *const fault_flags[] = {"--blackhole", "--half-open", "--stop-reading",
                                          "--refuse", NULL};
static const char *const fault_values[] = {"--latency",    "--jitter",      "--bandwidth",
                                           "--slice",      "--reset-after", "--limit-data",
                                           "--slow-close", "--direction",   "--probability",
                                           "--accept-delay", NULL};

static bool listed(const char *const *list, const char *o)
{
    for (; *list != NULL; list++)
        if (strcmp(*list, o) == 0)
            return true;
    return false;
}

/* Parses argv into a; -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, chaos_args *a)
{
    tp_chaos_options_init(&a->o);
    tp_chaos_fault *f = &a->o.fault;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        tp_errinfo err;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(o, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (listed(fault_flags, o)) {
            (void)tp_chaos_fault_set(f, o + 2, NULL, &err); /* a flag cannot be wrong */
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "tidepool chaos: unknown option or missing value: %s\n", o);
            return 2;
        }
        i++;
        if (listed(fault_values, o)) {
            if (tp_chaos_fault_set(f, o + 2, v, &err) != TP_OK) {
                fprintf(stderr, "tidepool chaos: %s\n", err.msg);
                return 2;
            }
        } else if (strcmp(o, "--listen") == 0) {
            free(a->listen_host);
            if (!parse_hostport(v, &a->listen_host, &a->o.listen_port))
                return bad(o, v);
            a->o.listen_host = a->listen_host;
        } else if (strcmp(o, "--upstream") == 0) {
            free(a->upstream_host);
            if (!parse_hostport(v, &a->upstream_host, &a->o.upstream_port) ||
                a->o.upstream_port == 0)
                return bad(o, v);
            a->o.upstream_host = a->upstream_host;
        } else if (strcmp(o, "--control") == 0) {
            free(a->control_host);
            if (!parse_hostport(v, &a->control_host, &a->o.control_port))
                return bad(o, v);
            a->o.control_host = a->control_host;
            a->o.control = true;
        } else if (strcmp(o, "--schedule") == 0) {
            char *text = read_file(v);
            if (text == NULL) {
                fprintf(stderr, "tidepool chaos: --schedule %s: %s\n", v, strerror(errno));
                return 2;
            }
            tp_free(a->steps);
            tp_err rc = tp_chaos_schedule_parse(text, &a->steps, &a->nsteps, &err);
            free(text);
            if (rc != TP_OK) {
                fprintf(stderr, "tidepool chaos: --schedule %s: %s\n", v, err.msg);
                return 2;
            }
        } else if (strcmp(o, "--seed") == 0) {
            char *end;
            errno = 0;
            a->o.seed = strtoull(v, &end, 10);
            if (end == v || *end != '\0' || errno != 0)
                return bad(o, v);
        } else {
            fprintf(stderr, "tidepool chaos: unknown option: %s\n", o);
            return 2;
        }
    }
    if (a->listen_host == NULL || a->upstream_host == NULL) {
        fprintf(stderr, "tidepool chaos: --listen and --upstream are required (see --help)\n");
        return 2;
    }
    return -1;
}

static void print_counters(const tp_chaos_counters *n, uint16_t port, bool json)
{
    if (json) {
        char buf[1024];
        tp_chaos_counters_json(n, buf, sizeof buf);
        printf("%s\n", buf);
        return;
    }
    printf("port %u, seed %llu\n"
           "connections: %llu accepted, %llu open, %llu upstream connects failed, %llu faulted\n"
           "bytes: %llu up, %llu down, %llu dropped\n"
           "faults: %llu resets, %llu data limits, %llu half-open, %llu refusals, %llu steps\n",
           (unsigned)port, (unsigned long long)n->seed, (unsigned long long)n->accepted,
           (unsigned long long)n->open, (unsigned long long)n->upstream_failures,
           (unsigned long long)n->faulted, (unsigned long long)n->bytes_up,
           (unsigned long long)n->bytes_down, (unsigned long long)n->bytes_dropped,
           (unsigned long long)n->resets, (unsigned long long)n->limits,
           (unsigned long long)n->half_opened, (unsigned long long)n->refused,
           (unsigned long long)n->steps);
}

int cmd_chaos(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "run") == 0)
        return cmd_chaos_run(argc - 1, argv + 1);
    chaos_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        free(a.listen_host);
        free(a.upstream_host);
        free(a.control_host);
        tp_free(a.steps);
        return rc;
    }
    /* Block the signals before the proxy's thread exists, and wait for them here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    tp_chaos *c = NULL;
    tp_errinfo err;
    tp_err e = tp_chaos_start(&a.o, &c, &err);
    free(a.listen_host);
    free(a.upstream_host);
    free(a.control_host);
    if (e == TP_OK && a.nsteps > 0)
        e = tp_chaos_schedule(c, a.steps, a.nsteps, &err); /* from now */
    tp_free(a.steps);
    if (e != TP_OK) {
        fprintf(stderr, "tidepool chaos: %s\n", err.msg);
        tp_chaos_stop(c);
        return 1;
    }
    /* Where it listens, at once (a port of 0 picks one): scripts read these lines. */
    fprintf(stderr, "tidepool chaos: listening on port %u\n", (unsigned)tp_chaos_port(c));
    if (tp_chaos_control_port(c) != 0)
        fprintf(stderr, "tidepool chaos: control API on port %u\n",
                (unsigned)tp_chaos_control_port(c));
    int sig = 0;
    sigwait(&set, &sig);
    tp_chaos_counters n;
    tp_chaos_counters_read(c, &n);
    uint16_t port = tp_chaos_port(c);
    tp_chaos_stop(c);
    print_counters(&n, port, a.json);
    return 0;
}
