/* cmd_chaos_run.c: `tidepool chaos run SCENARIO.json`: the fault proxy in front of a real
 * server (HTTP through the blocking call or the engine, PostgreSQL, Redis), load through
 * a tidepool pool, the scenario's schedule of faults and server restarts, and a verdict
 * per assertion. Each request carries its own id (the body of a POST to an echoing
 * location or the query of a GET, SELECT 'id', ECHO id), so a response handed to the
 * wrong request is caught; a sampler reads the pool's gauges every 2 ms, another the
 * server's count of the run's connections every 100 ms; the process's descriptors are
 * counted before and after. Exit status 0 when every verdict passes, 1 when one fails, 2 for a
 * bad scenario. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos_run.h"
#include "cli.h"

extern char **environ;

/* The heal of a run whose restarts have not all finished: later than any request. */
#define HEAL_PENDING (INT64_MAX / 4)

typedef struct run {
    const chaos_scenario *sc;
    chaos_target *t;
    chaos_target *direct; /* straight to the server, for its count of our connections */
    const char *restart_cmd;
    char prefix[48]; /* of this run's ids and connection names: tc<pid>-<clock> */
    int64_t t0;
    int64_t proxy_heal;   /* when the proxy's last step ends, from t0; -1: none */
    _Atomic int64_t heal; /* when every fault and restart is over, from t0; -1: no heal */
    atomic_bool stop;
    _Atomic uint64_t ok, misdelivered, gauge_breaks, samples, failed_after_heal;
    _Atomic uint64_t failed_by[CHAOS_NERR];
    _Atomic int64_t first_ok_after_heal; /* ns from t0; -1 */
    _Atomic uint64_t opens_at_heal;      /* the pool's opens when the heal came */
    atomic_bool heal_seen;
    /* timeouts: how many, how many outlasted their bound, the worst excess over it */
    _Atomic uint64_t timeouts, late_timeouts;
    _Atomic int64_t worst_late, worst_late_bound;
    _Atomic long server_max; /* most of our connections the server held at a sample; -1 */
    /* restarts: how many ran, how many failed, the longest */
    int restarts_done, restarts_failed;
    int64_t restart_longest;
} run;

typedef struct wk {
    run *r;
    int id;
} wk;

/* ---- the load -------------------------------------------------------------------- */

/* The bound a timeout of code rc must fire within: the timeout that code names. */
static int64_t timeout_bound(const chaos_scenario *sc, tp_err rc)
{
    tp_pool_options po;
    tp_pool_options_init(&po);
    switch (rc) {
    case TP_EHDRTIMEDOUT:
        return sc->header_timeout;
    case TP_EREQTIMEDOUT: /* the query or command timeout of a database, the HTTP deadline */
        return sc->k == K_PG || sc->k == K_REDIS ? sc->header_timeout : sc->request_timeout;
    case TP_ECONNTIMEDOUT:
        return sc->connect_timeout > 0 ? sc->connect_timeout : po.connect_timeout;
    case TP_ETIMEDOUT:
        return po.acquire_timeout;
    default:
        return -1;
    }
}

/* A failure that is a timeout: did it fire within its bound? The request's time also
 * holds its acquire and connect, so a quarter and 250 ms of slack. */
static void note_timeout(run *r, tp_err rc, int64_t took)
{
    int64_t bound = timeout_bound(r->sc, rc);
    if (bound < 0)
        return;
    atomic_fetch_add(&r->timeouts, 1);
    int64_t allowed = bound + bound / 4 + 250 * TP_NSEC_PER_MSEC;
    if (took <= allowed)
        return;
    atomic_fetch_add(&r->late_timeouts, 1);
    int64_t over = took - bound, w = atomic_load(&r->worst_late);
    while (over > w && !atomic_compare_exchange_weak(&r->worst_late, &w, over))
        ;
    atomic_store(&r->worst_late_bound, bound);
}

static void *worker_main(void *arg)
{
    wk *w = arg;
    run *r = w->r;
    const chaos_scenario *sc = r->sc;
    tp_http_engine *eng = NULL;
    if (r->t->k == K_ENGINE && tp_http_engine_create(r->t->http, &eng, NULL) != TP_OK) {
        atomic_fetch_add(&r->failed_by[-TP_ENOMEM], 1);
        return NULL;
    }
    char id[64];
    for (uint64_t n = 0; !atomic_load(&r->stop); n++) {
        snprintf(id, sizeof id, "%s-%d-%llu", r->prefix, w->id, (unsigned long long)n);
        int64_t start = tp_clock_now() - r->t0;
        bool right;
        tp_err rc = chaos_request(sc, r->t, eng, sc->proxied, id, &right);
        int64_t end = tp_clock_now() - r->t0;
        int64_t heal = atomic_load(&r->heal);
        if (rc == TP_OK) {
            atomic_fetch_add(right ? &r->ok : &r->misdelivered, 1);
            if (right && heal >= 0 && end >= heal) {
                int64_t none = -1;
                atomic_compare_exchange_strong(&r->first_ok_after_heal, &none, end);
            }
        } else {
            atomic_fetch_add(&r->failed_by[-rc > 0 && -rc < CHAOS_NERR ? -rc : 0], 1);
            note_timeout(r, rc, end - start);
            if (heal >= 0 && start >= heal + sc->recovery_within)
                atomic_fetch_add(&r->failed_after_heal, 1);
            usleep(1000); /* a failing client does not spin */
        }
    }
    tp_http_engine_destroy(eng);
    return NULL;
}

static void *sampler_main(void *arg)
{
    run *r = arg;
    tp_pool *p = chaos_target_pool(r->t);
    while (!atomic_load(&r->stop)) {
        tp_stats st;
        tp_pool_stats(p, &st);
        if (st.idle + st.in_use + st.opening != st.total)
            atomic_fetch_add(&r->gauge_breaks, 1);
        atomic_fetch_add(&r->samples, 1);
        int64_t now = tp_clock_now(), heal = atomic_load(&r->heal);
        if (heal >= 0 && !atomic_load(&r->heal_seen) && now - r->t0 >= heal) {
            atomic_store(&r->opens_at_heal, st.opens);
            atomic_store(&r->heal_seen, true);
        }
        usleep(2000);
    }
    return NULL;
}

/* The server's count of our connections every 100 ms, on its own thread: a query to a
 * server that is restarting may wait seconds, and the gauges' sampler must not. */
static void *server_sampler_main(void *arg)
{
    run *r = arg;
    while (!atomic_load(&r->stop)) {
        long n; /* a server that cannot be asked now: that sample is skipped */
        if (chaos_server_conns(r->direct, r->prefix, &n) && n > atomic_load(&r->server_max))
            atomic_store(&r->server_max, n);
        usleep(100000);
    }
    return NULL;
}

/* Runs cmd with /bin/sh; its exit status, -1 if it could not run or was killed. The
 * command's input is /dev/null and its output goes to a file, never to our stdout or
 * stderr, and it inherits no other descriptor: a server it starts inherits them, and a
 * daemon holding the pipe a caller reads our output through would keep that caller
 * waiting for an end that never comes. A failing command's output is copied to
 * stderr. */
static int run_command(const char *cmd)
{
    char out[] = "/tmp/tidepool-restart-XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0)
        return -1;
    unlink(out);
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        close(fd);
        return -1;
    }
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fd, STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, fd);
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1); /* whatever we inherited */
    pid_t pid;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    int e = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int st = -1;
    if (e == 0)
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    int rc = e == 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != 0) {
        fprintf(stderr, "tidepool chaos run: the restart command %s (%d):\n",
                e != 0 ? "did not run" : "failed", rc);
        char buf[4096];
        ssize_t n;
        lseek(fd, 0, SEEK_SET);
        while ((n = read(fd, buf, sizeof buf)) > 0)
            fwrite(buf, 1, (size_t)n, stderr);
    }
    close(fd);
    return rc;
}

/* The scenario's restarts, each at its time; the heal comes when the last is over (or
 * the proxy's last step ends, whichever is later). */
static void *restarter_main(void *arg)
{
    run *r = arg;
    const chaos_scenario *sc = r->sc;
    int64_t last_end = -1;
    for (size_t i = 0; i < sc->nrestarts && !atomic_load(&r->stop); i++) {
        while (!atomic_load(&r->stop) && tp_clock_now() - r->t0 < sc->restart_at[i])
            usleep(1000);
        if (atomic_load(&r->stop))
            break;
        int64_t t = tp_clock_now();
        int st = run_command(r->restart_cmd);
        int64_t took = tp_clock_now() - t;
        r->restarts_done++;
        r->restarts_failed += st != 0;
        r->restart_longest = took > r->restart_longest ? took : r->restart_longest;
        last_end = tp_clock_now() - r->t0;
    }
    int64_t heal = last_end > r->proxy_heal ? last_end : r->proxy_heal;
    atomic_store(&r->heal, heal);
    return NULL;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* ---- verdicts -------------------------------------------------------------------- */

/* What the run saw once its load stopped, for the verdicts. */
typedef struct outcome {
    tp_stats st;         /* the pool's, after the load */
    tp_chaos_counters k; /* the proxy's */
    int fds_before, fds_after;
    uint64_t failed, unexplained;
    char kinds[512];      /* failures by error name, as text */
    char kinds_json[640]; /* the same as JSON members */
    bool server_read;
    long server_end; /* the server's count of our connections after the load */
} outcome;

static void count_failures(const run *r, outcome *o)
{
    size_t kl = 0, jl = 0;
    for (int i = 0; i < CHAOS_NERR; i++) {
        uint64_t n = atomic_load(&r->failed_by[i]);
        if (n == 0)
            continue;
        o->failed += n;
        if (i >= 32 || !(r->sc->allowed & (1u << i)))
            o->unexplained += n;
        kl += (size_t)snprintf(o->kinds + kl, kl < sizeof o->kinds ? sizeof o->kinds - kl : 0,
                               "%s%s %llu", kl > 0 ? ", " : "",
                               i > 0 ? tp_err_name((tp_err)-i) : "other", (unsigned long long)n);
        if (kl >= sizeof o->kinds)
            kl = sizeof o->kinds - 1;
        jl += (size_t)snprintf(o->kinds_json + jl,
                               jl < sizeof o->kinds_json ? sizeof o->kinds_json - jl : 0,
                               "%s\"%s\": %llu", jl > 0 ? ", " : "",
                               i > 0 ? tp_err_name((tp_err)-i) : "other", (unsigned long long)n);
        if (jl >= sizeof o->kinds_json)
            jl = sizeof o->kinds_json - 1;
    }
}

/* Faults after which the proxy may hold a server's connection the client gave up. */
static bool may_freeze(const chaos_scenario *sc)
{
    bool f = sc->fault.half_open || sc->fault.blackhole || sc->fault.stop_reading;
    for (size_t i = 0; i < sc->nsteps; i++)
        f = f || (sc->steps[i].set_fault &&
                  (sc->steps[i].fault.half_open || sc->steps[i].fault.blackhole ||
                   sc->steps[i].fault.stop_reading));
    return f;
}

static void pool_verdicts(chaos_verdicts *v, const run *r, const outcome *o)
{
    chaos_verdict(v, "no_misdelivery", r->misdelivered == 0,
                  "%llu of %llu responses for another request", (unsigned long long)r->misdelivered,
                  (unsigned long long)(r->ok + r->misdelivered));
    chaos_verdict(v, "gauges_consistent", r->gauge_breaks == 0,
                  "idle + in_use + opening != total in %llu of %llu samples",
                  (unsigned long long)r->gauge_breaks, (unsigned long long)r->samples);
    chaos_verdict(v, "no_leaked_lease", o->st.in_use == 0, "%lld leases out after the load",
                  (long long)o->st.in_use);
    chaos_verdict(v, "no_leaked_fd", o->fds_after == o->fds_before,
                  "%d descriptors after, %d before", o->fds_after, o->fds_before);
    chaos_verdict(v, "only_explained_errors", o->unexplained == 0,
                  "%llu failures of kinds no fault explains", (unsigned long long)o->unexplained);
    chaos_verdict(v, "progress", r->ok > 0, "%llu requests served", (unsigned long long)r->ok);
    /* A dead peer is detected by the timeout meant for it, not by a longer one. */
    if (r->late_timeouts == 0)
        chaos_verdict(v, "dead_detected_within", true, "%llu timeouts, each within its bound",
                      (unsigned long long)r->timeouts);
    else
        chaos_verdict(v, "dead_detected_within", false,
                      "%llu of %llu timeouts fired late, the latest %.0f ms past its %.0f ms "
                      "bound",
                      (unsigned long long)r->late_timeouts, (unsigned long long)r->timeouts,
                      (double)r->worst_late / 1e6, (double)r->worst_late_bound / 1e6);
    int64_t p99 = tp_histogram_quantile(&o->st.acquire_wait, 0.99);
    tp_pool_options po;
    tp_pool_options_init(&po);
    chaos_verdict(v, "acquire_p99", p99 <= po.acquire_timeout,
                  "acquire wait p99 %.1f ms (timeout %.0f ms)", (double)p99 / 1e6,
                  (double)po.acquire_timeout / 1e6);
    if (r->sc->expect_breaker)
        chaos_verdict(v, "breaker_opens_and_closes",
                      o->st.rejects_breaker > 0 && atomic_load(&r->first_ok_after_heal) >= 0,
                      "%llu acquires refused while it was open; served again after the heal: %s",
                      (unsigned long long)o->st.rejects_breaker,
                      atomic_load(&r->first_ok_after_heal) >= 0 ? "yes" : "no");
}

static void heal_verdicts(chaos_verdicts *v, const run *r, const outcome *o)
{
    const chaos_scenario *sc = r->sc;
    if (sc->nrestarts > 0)
        chaos_verdict(v, "server_restarted",
                      r->restarts_done == (int)sc->nrestarts && r->restarts_failed == 0,
                      "%d of %zu restarts ran, %d failed; the longest took %.0f ms",
                      r->restarts_done, sc->nrestarts, r->restarts_failed,
                      (double)r->restart_longest / 1e6);
    int64_t heal = atomic_load(&r->heal);
    if (heal < 0 || heal >= sc->duration)
        return;
    int64_t first = atomic_load(&r->first_ok_after_heal);
    chaos_verdict(v, "recovery", first >= 0 && first - heal <= sc->recovery_within,
                  "first success %.0f ms after the heal (bound %.0f ms)",
                  first >= 0 ? (double)(first - heal) / 1e6 : -1.0,
                  (double)sc->recovery_within / 1e6);
    chaos_verdict(v, "no_failure_after_heal", r->failed_after_heal == 0,
                  "%llu failures started later than the heal + the recovery bound",
                  (unsigned long long)r->failed_after_heal);
    uint64_t opens_after = o->st.opens - atomic_load(&r->opens_at_heal);
    chaos_verdict(v, "no_reconnect_storm", (int64_t)opens_after <= sc->max_opens_after_heal,
                  "%llu opens after the heal (bound %lld)", (unsigned long long)opens_after,
                  (long long)sc->max_opens_after_heal);
}

/* The server's view: its log of what it received (HTTP), its count of our connections
 * (PostgreSQL, Redis). */
static void server_verdicts(chaos_verdicts *v, const run *r, const outcome *o,
                            const char *server_log)
{
    const chaos_scenario *sc = r->sc;
    if (server_log != NULL && (sc->k == K_HTTP || sc->k == K_ENGINE)) {
        /* A server logs a request after its answer is out: the last few lines may come
         * a moment after the client has its response. Read until the log is still. */
        uint64_t seen = 0, twice = 0, before = UINT64_MAX;
        bool read = false;
        for (int i = 0; i < 20 && seen != before; i++) {
            before = seen;
            if (i > 0)
                usleep(50000);
            read = chaos_server_log(server_log, r->prefix, &seen, &twice);
        }
        /* A POST is never retried once it may have reached the server: each id at most
         * once. And every answered request was received; but a server killed for a
         * restart may answer a request and die before its log line is out (nginx's fast
         * shutdown does), so a restart may leave up to one answered request per worker
         * unlogged. */
        uint64_t answered = r->ok + r->misdelivered;
        uint64_t unlogged = (uint64_t)sc->nrestarts * (uint64_t)sc->concurrency;
        chaos_verdict(v, sc->post_echo ? "post_at_most_once" : "server_view",
                      read && twice == 0 && seen + unlogged >= answered,
                      "the server received %llu of this run's requests, %llu of them twice or "
                      "more; %llu answered%s",
                      (unsigned long long)seen, (unsigned long long)twice,
                      (unsigned long long)answered, read ? "" : " (log unreadable)");
    }
    if (r->direct == NULL)
        return;
    /* Every connection the server holds for us is one the pool holds, except those the
     * proxy froze (a black hole, a half-open or a stopped peer keeps its upstream side)
     * and, after a restart, pool connections the server no longer has. */
    long total = (long)o->st.total;
    bool frozen = may_freeze(sc);
    bool pass = o->server_read && (frozen              ? o->server_end <= (long)o->k.open
                                   : sc->nrestarts > 0 ? o->server_end <= total
                                                       : o->server_end == total);
    chaos_verdict(v, "server_connections", pass,
                  "the server holds %ld of this run's connections after the load, the pool "
                  "%ld%s; at most %ld during the run%s",
                  o->server_end, total, frozen ? " (the proxy may hold frozen ones)" : "",
                  atomic_load(&r->server_max), o->server_read ? "" : " (server unreadable)");
}

/* ---- the run --------------------------------------------------------------------- */

/* The server's count of our connections once it has seen every close the pool made
 * (a backend exits a moment after its client hangs up): read until it matches want, at
 * most 2 s. */
static bool server_settled(run *r, long want, long *n)
{
    bool read = false;
    for (int i = 0; i < 40; i++) {
        read = chaos_server_conns(r->direct, r->prefix, n);
        if (read && *n <= want)
            break;
        usleep(50000);
    }
    return read;
}

/* Starts the library's threads once, straight to the server (they keep their
 * descriptors for the process's life), so that the count before is the count after. */
static void warm_up(const chaos_scenario *s)
{
    chaos_target warm;
    if (chaos_target_new(s, s->url, NULL, &warm, NULL) != TP_OK)
        return;
    tp_http_engine *weng = NULL;
    bool right;
    if (warm.k != K_ENGINE || tp_http_engine_create(warm.http, &weng, NULL) == TP_OK)
        (void)chaos_request(s, &warm, weng, s->url, "warm-up", &right);
    tp_http_engine_destroy(weng);
    chaos_target_free(&warm);
}

static void load(run *r)
{
    const chaos_scenario *s = r->sc;
    pthread_t th[CHAOS_MAX_WORKERS], smp, srv, rst;
    wk w[CHAOS_MAX_WORKERS];
    for (int i = 0; i < s->concurrency; i++) {
        w[i] = (wk){r, i};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    pthread_create(&smp, NULL, sampler_main, r);
    bool server = r->direct != NULL && pthread_create(&srv, NULL, server_sampler_main, r) == 0;
    bool restarts = s->nrestarts > 0 && pthread_create(&rst, NULL, restarter_main, r) == 0;
    int64_t end = r->t0 + s->duration;
    while (tp_clock_now() < end)
        usleep(10000);
    atomic_store(&r->stop, true);
    for (int i = 0; i < s->concurrency; i++)
        pthread_join(th[i], NULL);
    pthread_join(smp, NULL);
    if (server)
        pthread_join(srv, NULL);
    if (restarts)
        pthread_join(rst, NULL);
}

static int fail_setup(const char *what, tp_chaos *px)
{
    fprintf(stderr, "tidepool chaos run: %s\n", what);
    if (px != NULL)
        tp_chaos_stop(px);
    return 2;
}

static int run_scenario(const chaos_scenario *sc, bool json, const char *server_log,
                        const char *restart_cmd)
{
    chaos_scenario s = *sc;
    if (s.nrestarts > 0 && restart_cmd == NULL)
        return fail_setup("the scenario restarts its server: give the command that does it "
                          "with --restart-cmd",
                          NULL);
    uint16_t dflt = s.k == K_PG ? 5432 : s.k == K_REDIS ? 6379 : 80;
    char scratch[600];
    if (!chaos_rewrite_url(s.url, 1, scratch, sizeof scratch, s.host, sizeof s.host, &s.port, dflt))
        return fail_setup("cannot read host and port in the URL", NULL);
    warm_up(&s);

    static run r;
    static chaos_target t, direct;
    memset(&r, 0, sizeof r);
    r.sc = &s;
    r.t = &t;
    r.restart_cmd = restart_cmd;
    snprintf(r.prefix, sizeof r.prefix, "tc%ld-%llx", (long)getpid(),
             (unsigned long long)(tp_clock_now() & 0xffffffffffull));
    atomic_store(&r.first_ok_after_heal, -1);
    atomic_store(&r.server_max, -1);
    r.proxy_heal = -1;
    for (size_t i = 0; i < s.nsteps; i++) {
        int64_t e = s.steps[i].at + (s.steps[i].duration > 0 ? s.steps[i].duration : 0);
        r.proxy_heal = e > r.proxy_heal ? e : r.proxy_heal;
    }
    atomic_store(&r.heal, s.nrestarts > 0 ? HEAL_PENDING : r.proxy_heal);

    outcome o = {0};
    o.fds_before = count_fds();
    tp_errinfo err;
    if ((s.k == K_PG || s.k == K_REDIS) &&
        chaos_target_new(&s, s.url, NULL, &direct, &err) == TP_OK)
        r.direct = &direct;
    tp_chaos_options co;
    tp_chaos_options_init(&co);
    co.upstream_host = s.host;
    co.upstream_port = s.port;
    co.fault = s.fault;
    tp_chaos *px;
    if (tp_chaos_start(&co, &px, &err) != TP_OK) {
        if (r.direct != NULL)
            chaos_target_free(&direct);
        return fail_setup(err.msg, NULL);
    }
    char host[256];
    uint16_t hport;
    (void)chaos_rewrite_url(s.url, tp_chaos_port(px), s.proxied, sizeof s.proxied, host,
                            sizeof host, &hport, dflt);
    if (chaos_target_new(&s, s.proxied, r.prefix, &t, &err) != TP_OK) {
        if (r.direct != NULL)
            chaos_target_free(&direct);
        return fail_setup(err.msg, px);
    }
    r.t0 = tp_clock_now();
    if (s.nsteps > 0 && tp_chaos_schedule(px, s.steps, s.nsteps, &err) != TP_OK) {
        chaos_target_free(&t);
        if (r.direct != NULL)
            chaos_target_free(&direct);
        return fail_setup(err.msg, px);
    }
    load(&r);

    tp_pool_stats(chaos_target_pool(&t), &o.st);
    tp_chaos_counters_read(px, &o.k);
    if (r.direct != NULL)
        o.server_read =
            server_settled(&r, may_freeze(&s) ? (long)o.k.open : (long)o.st.total, &o.server_end);
    chaos_target_free(&t);
    if (r.direct != NULL)
        chaos_target_free(&direct);
    tp_chaos_stop(px); /* half-open links too: only the client's descriptors are counted */
    o.fds_after = count_fds();
    count_failures(&r, &o);

    chaos_verdicts v = {.json = json, .all = true};
    if (!json)
        printf("scenario: %s (%llu ok, %llu failed%s%s; proxy: %llu accepted, %llu resets)\n",
               s.name, (unsigned long long)r.ok, (unsigned long long)o.failed,
               o.failed > 0 ? ": " : "", o.kinds, (unsigned long long)o.k.accepted,
               (unsigned long long)o.k.resets);
    pool_verdicts(&v, &r, &o);
    heal_verdicts(&v, &r, &o);
    server_verdicts(&v, &r, &o, server_log);
    if (json) {
        /* The figures of a fault x client table beside the verdicts: -1 where the run has
           no heal, or no success after it. */
        int64_t heal = atomic_load(&r.heal), first = atomic_load(&r.first_ok_after_heal);
        bool healed = heal >= 0 && heal < s.duration;
        printf("{\"scenario\": \"%s\", \"ok\": %llu, \"failed\": %llu, \"failed_by\": {%s}, "
               "\"misdelivered\": %llu, \"opens\": %llu, \"opens_after_heal\": %lld, "
               "\"recovery_ms\": %.1f, \"fds_before\": %d, \"fds_after\": %d, "
               "\"verdicts\": [%s], \"pass\": %s}\n",
               s.name, (unsigned long long)r.ok, (unsigned long long)o.failed, o.kinds_json,
               (unsigned long long)r.misdelivered, (unsigned long long)o.st.opens,
               healed ? (long long)(o.st.opens - atomic_load(&r.opens_at_heal)) : -1LL,
               healed && first >= 0 ? (double)(first - heal) / 1e6 : -1.0, o.fds_before,
               o.fds_after, v.buf, v.all ? "true" : "false");
    } else
        printf("%s\n", v.all ? "PASS" : "FAIL");
    return v.all ? 0 : 1;
}

static int usage(void)
{
    printf("usage: tidepool chaos run SCENARIO.json [--url URL] [--client blocking|engine]\n"
           "                          [--server-log FILE] [--restart-cmd CMD] [--json]\n\n"
           "Runs the scenario's load through a tidepool pool and the fault proxy in\n"
           "front of its server (--url and --client replace the scenario's; the engine\n"
           "is for http:// only, a database URL ignores it), applies its schedule\n"
           "and prints a verdict per assertion. --server-log names the server's log\n"
           "of request URIs (each request carries ?id=): a POST must reach the server\n"
           "at most once. --restart-cmd is the shell command that restarts the server,\n"
           "run at each {\"restart\": true} step of the schedule (its output goes to\n"
           "stderr). See scenarios/ and docs/chaos.md.\n");
    return 0;
}

int cmd_chaos_run(int argc, char **argv)
{
    const char *path = NULL, *url = NULL, *client = NULL, *server_log = NULL, *restart_cmd = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--client") == 0 && i + 1 < argc)
            client = argv[++i];
        else if (strcmp(argv[i], "--server-log") == 0 && i + 1 < argc)
            server_log = argv[++i];
        else if (strcmp(argv[i], "--restart-cmd") == 0 && i + 1 < argc)
            restart_cmd = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage();
        else if (path == NULL && argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "tidepool chaos run: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "tidepool chaos run: a scenario file is required\n");
        return 2;
    }
    chaos_scenario sc;
    int rc = chaos_scenario_load(path, url, client, &sc);
    if (rc != 0)
        return rc;
    rc = run_scenario(&sc, json, server_log, restart_cmd);
    tp_free(sc.steps);
    return rc;
}
