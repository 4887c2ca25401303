/* bench.h: what the parts of `tidepool bench` share: the configuration, a worker (one
 * event loop for HTTP, one thread for a database), the run's shared state, and recording
 * one request's outcome. */
#ifndef TP_TOOLS_BENCH_H
#define TP_TOOLS_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tidepool/fleet.h"
#include "tidepool/tidepool.h"

#include "heatmap.h"
#include "latency.h"

#define MAX_HEADERS 32
/* A wait of at least 0 ns and at most 100 ms (so the stop flag is seen). */
#define TP__MIN_I(a, b) ((a) < (b) ? (a) : (b))
#define TP__CLAMP_WAIT(ns) ((ns) < 0 ? 0 : (ns) > 100000000 ? 100000000 : (ns))

typedef struct bench_cfg {
    const char *url;
    int64_t concurrency, total;
    int64_t threads;
    double rate;
    double seconds;
    int64_t max_per_host;
    double idle_timeout_s;
    int64_t max_idle_per_host; /* -1: the pool's default */
    double timeout_s;
    const char *method;
    const char *body;
    const char *hnames[MAX_HEADERS], *hvalues[MAX_HEADERS];
    char *hstore[MAX_HEADERS];
    size_t nheaders;
    bool json, quiet, insecure;
    const char *cacert;
    const char *heatmap;       /* --heatmap FILE.svg */
    const char *query;         /* --query SQL (postgres://) */
    const char *command;       /* --command 'PING' (redis://) */
    const char *metrics;       /* --metrics ADDR: serve the pool's metrics while running */
    bool adaptive;             /* --adaptive: the pool's adaptive limit per key */
    const char *server_phases; /* --server-phases SPEC: the built-in server's capacity */
    const char *plot;          /* --plot FILE.svg: limit, in use, latency over time */
    const char *unix_socket;   /* --unix-socket PATH: HTTP over this socket (curl's) */
    const char *cert, *key, *pass; /* --cert, --key, --pass: a client certificate (curl's) */
    const char *proxy;         /* --proxy URL: an HTTP proxy (curl's -x) */
    bool compressed;           /* --compressed: decompress on (curl's) */
    tp_http_version http_version; /* --http2, --http1.1 (curl's); AUTO: h2 by ALPN */
    const char *fleet;          /* --fleet redis://...: a budget shared across processes */
    const char *fleet_name;     /* --fleet-name */
    int64_t fleet_cap;          /* --fleet-cap */
    const char *fleet_instance; /* --fleet-instance (NULL: the library's default) */
} bench_cfg;

typedef struct worker worker;

/* One request in flight: which worker, and when it was due to start (open loop: its
 * scheduled instant, so a stalled server cannot hide its queueing delay). */
typedef struct inflight {
    worker *w;
    int64_t start;
} inflight;

struct worker {
    pthread_t thread;
    const bench_cfg *cfg;
    tp_http_client *client;
    void *db; /* postgres:// or redis://: the database pool */
    tp_http_engine *engine;
    tp_http_request req;
    int64_t concurrency; /* closed loop: requests kept in flight by this worker */
    double rate;         /* open loop: requests per second from this worker (0: closed) */
    pthread_mutex_t mu;  /* guards interval and plot_interval (the reporter swaps them) */
    latency interval;
    latency plot_interval; /* --plot: the sampler swaps it each plot interval */
    latency total;         /* owned by the worker until it is joined */
    uint64_t requests, errors;
    uint64_t err_by_code[32];
    uint64_t bad_status;
    uint64_t submit_errors;
    heatmap heat; /* --heatmap: this loop's samples (its thread only) */
};

/* The run's shared state. */
extern atomic_bool bench_stop;
extern atomic_llong bench_finished; /* workers that ran out of requests (-n) */
extern atomic_llong bench_h2_responses; /* responses that came over HTTP/2 */

/* bench_sample_interval: the time step of the heat map and the plot: 100 ms for runs of
 * a minute or less, 1 s for longer ones. */
static inline int64_t bench_sample_interval(const bench_cfg *cfg)
{
    return cfg->seconds <= 60 ? 100 * TP_NSEC_PER_MSEC : TP_NSEC_PER_SEC;
}

/* bench_may_issue: may another request start? Counts it against -n when one is given. */
bool bench_may_issue(const bench_cfg *cfg);
/* bench_record: one request's outcome (worker thread). */
void bench_record(worker *w, tp_err rc, int64_t us, bool ok);

/* cmd_bench_args.c: bench_parse_args: fills *cfg from the command line (prints the usage
 * and exits 0 on --help); -1 after printing what is wrong. CLI only: not in the test
 * objects, like every cmd_*.c. */
int bench_parse_args(int argc, char **argv, bench_cfg *cfg);

/* bench_fleet.c: --fleet. bench_fleet_start: the fleet for cfg (NULL without --fleet;
 * prints why and returns -1 when it cannot start), whose hook goes in the pool options.
 * bench_fleet_attach: the pools it serves. bench_fleet_json: its figures as a JSON
 * member (',"fleet":{...}', or "" without a fleet) into buf. */
int bench_fleet_start(const bench_cfg *cfg, tp_fleet **out);
void bench_fleet_attach(tp_fleet *f, tp_pool *pool, tp_pool *h2);
void bench_fleet_json(tp_fleet *f, char *buf, size_t cap);

/* bench_http.c: one event loop (the worker's engine): closed or open loop. */
void *bench_http_worker(void *arg);

/* bench_db.c: postgres:// and redis:// URLs. */
bool bench_db_url(const char *url);
/* bench_db_open: the database pool for cfg->url with per-destination limit max_per_key;
 * *pool is its tidepool pool (for stats). */
tp_err bench_db_open(const bench_cfg *cfg, int64_t max_per_key, const tp_permit_hook *permits,
                     void **db, tp_pool **pool, tp_errinfo *err);
void bench_db_close(const bench_cfg *cfg, void *db);
/* bench_db_worker: one thread running acquire, one statement or command, release. */
void *bench_db_worker(void *arg);

#endif
