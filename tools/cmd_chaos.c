/* cmd_chaos.c: `tidepool chaos`: the fault proxy of include/tidepool/chaos.h from the
 * command line. Parses the faults, runs the proxy until SIGINT or SIGTERM, then prints
 * its counters (one JSON object with --json). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidepool/chaos.h"
#include "tidepool/clock.h"

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tidepool chaos --listen HOST:PORT --upstream HOST:PORT [faults] [--json]\n\n"
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
            "  --direction D       up (client to upstream), down or both (default both)\n"
            "  --probability P     fault a connection with probability P (default 1)\n"
            "  --seed N            seed of the random draws (replays a run)\n"
            "options:\n"
            "  --json              print the counters as one JSON object\n");
}

/* BYTES with an optional unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB (powers of 1024). */
static bool parse_bytes(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || v < 0 || errno != 0)
        return false;
    double mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024.0, end++;
    else if (*end == 'M')
        mult = 1024.0 * 1024.0, end++;
    else if (*end == 'G')
        mult = 1024.0 * 1024.0 * 1024.0, end++;
    if (mult > 1 && *end == 'i')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || v * mult > 9e18)
        return false;
    *out = (int64_t)(v * mult);
    return true;
}

static bool parse_duration_ns(const char *s, int64_t *out)
{
    double secs;
    if (!parse_duration_s(s, &secs) || secs > 9e9)
        return false;
    *out = (int64_t)(secs * 1e9);
    return true;
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
    char *listen_host, *upstream_host;
    bool json;
} chaos_args;

static int bad(const char *opt, const char *v)
{
    fprintf(stderr, "tidepool chaos: %s: bad value \"%s\" (see --help)\n", opt,
            v != NULL ? v : "");
    return 2;
}

/* Parses argv into a; -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, chaos_args *a)
{
    tp_chaos_options_init(&a->o);
    tp_chaos_fault *f = &a->o.fault;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        bool flag = true;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(o, "--json") == 0) {
            a->json = true;
        } else if (strcmp(o, "--blackhole") == 0) {
            f->blackhole = true;
        } else if (strcmp(o, "--half-open") == 0) {
            f->half_open = true;
        } else if (strcmp(o, "--stop-reading") == 0) {
            f->stop_reading = true;
        } else if (strcmp(o, "--refuse") == 0) {
            f->refuse = true;
        } else {
            flag = false;
        }
        if (flag)
            continue;
        if (v == NULL) {
            fprintf(stderr, "tidepool chaos: unknown option or missing value: %s\n", o);
            return 2;
        }
        i++;
        if (strcmp(o, "--listen") == 0) {
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
        } else if (strcmp(o, "--latency") == 0) {
            if (!parse_duration_ns(v, &f->latency))
                return bad(o, v);
        } else if (strcmp(o, "--jitter") == 0) {
            if (!parse_duration_ns(v, &f->jitter))
                return bad(o, v);
        } else if (strcmp(o, "--slow-close") == 0) {
            if (!parse_duration_ns(v, &f->slow_close))
                return bad(o, v);
        } else if (strcmp(o, "--bandwidth") == 0) {
            char rate[64];
            size_t len = strlen(v);
            if (len >= sizeof rate)
                return bad(o, v);
            memcpy(rate, v, len + 1);
            if (len > 2 && strcmp(rate + len - 2, "/s") == 0)
                rate[len - 2] = '\0';
            if (!parse_bytes(rate, &n) || n == 0)
                return bad(o, v);
            f->bandwidth = n;
        } else if (strcmp(o, "--slice") == 0) {
            if (!parse_bytes(v, &n) || n == 0)
                return bad(o, v);
            f->slice = (size_t)n;
        } else if (strcmp(o, "--limit-data") == 0) {
            if (!parse_bytes(v, &f->limit_data))
                return bad(o, v);
        } else if (strcmp(o, "--reset-after") == 0) {
            /* bytes unless it carries a time unit */
            if (!parse_bytes(v, &f->reset_after_bytes)) {
                f->reset_after_bytes = -1;
                if (!parse_duration_ns(v, &f->reset_after))
                    return bad(o, v);
            }
        } else if (strcmp(o, "--direction") == 0) {
            if (strcmp(v, "up") == 0)
                f->direction = TP_CHAOS_UP;
            else if (strcmp(v, "down") == 0)
                f->direction = TP_CHAOS_DOWN;
            else if (strcmp(v, "both") == 0)
                f->direction = TP_CHAOS_BOTH;
            else
                return bad(o, v);
        } else if (strcmp(o, "--probability") == 0) {
            char *end;
            f->probability = strtod(v, &end);
            if (end == v || *end != '\0')
                return bad(o, v);
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
    if (a->o.listen_host == NULL || a->listen_host == NULL || a->o.upstream_host == NULL) {
        fprintf(stderr, "tidepool chaos: --listen and --upstream are required (see --help)\n");
        return 2;
    }
    return -1;
}

static void print_counters(const tp_chaos_counters *n, uint16_t port, bool json)
{
    if (json) {
        printf("{\"tool\": \"tidepool-chaos\", \"port\": %u, \"seed\": %llu, \"accepted\": %llu, "
               "\"open\": %llu, \"upstream_failures\": %llu, \"bytes_up\": %llu, "
               "\"bytes_down\": %llu, \"bytes_dropped\": %llu, \"faulted\": %llu, "
               "\"resets\": %llu, \"limits\": %llu, \"half_opened\": %llu, \"refused\": %llu}\n",
               (unsigned)port, (unsigned long long)n->seed, (unsigned long long)n->accepted,
               (unsigned long long)n->open, (unsigned long long)n->upstream_failures,
               (unsigned long long)n->bytes_up, (unsigned long long)n->bytes_down,
               (unsigned long long)n->bytes_dropped, (unsigned long long)n->faulted,
               (unsigned long long)n->resets, (unsigned long long)n->limits,
               (unsigned long long)n->half_opened, (unsigned long long)n->refused);
        return;
    }
    printf("port %u, seed %llu\n"
           "connections: %llu accepted, %llu open, %llu upstream connects failed, %llu faulted\n"
           "bytes: %llu up, %llu down, %llu dropped\n"
           "faults: %llu resets, %llu data limits, %llu half-open, %llu refusals\n",
           (unsigned)port, (unsigned long long)n->seed, (unsigned long long)n->accepted,
           (unsigned long long)n->open, (unsigned long long)n->upstream_failures,
           (unsigned long long)n->faulted, (unsigned long long)n->bytes_up,
           (unsigned long long)n->bytes_down, (unsigned long long)n->bytes_dropped,
           (unsigned long long)n->resets, (unsigned long long)n->limits,
           (unsigned long long)n->half_opened, (unsigned long long)n->refused);
}

int cmd_chaos(int argc, char **argv)
{
    chaos_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) {
        free(a.listen_host);
        free(a.upstream_host);
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
    if (e != TP_OK) {
        fprintf(stderr, "tidepool chaos: %s\n", err.msg);
        return 1;
    }
    /* Where it listens, at once (a port of 0 picks one): scripts read this line. */
    fprintf(stderr, "tidepool chaos: listening on port %u\n", (unsigned)tp_chaos_port(c));
    int sig = 0;
    sigwait(&set, &sig);
    tp_chaos_counters n;
    tp_chaos_counters_read(c, &n);
    uint16_t port = tp_chaos_port(c);
    tp_chaos_stop(c);
    print_counters(&n, port, a.json);
    return 0;
}
