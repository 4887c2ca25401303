/* cmd_chaos_run.c: `tidepool chaos run SCENARIO.json`: the fault proxy in front of a real
 * HTTP server, load through a tidepool pool, the scenario's schedule of faults, and a
 * verdict per assertion. Each request carries its own id (as the body of a POST to an
 * echoing location, or in the query of a GET), so a response handed to the wrong request
 * is caught; a sampler reads the pool's gauges every 2 ms; the process's descriptors are
 * counted before and after. Exit status 0 when every verdict passes, 1 when one fails,
 * 2 for a bad scenario. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tidepool/tidepool.h"

#include "cli.h"

#ifdef TIDEPOOL_HAVE_JANSSON
#include <jansson.h>

#define MAX_WORKERS 256
#define NERR 64

typedef struct scenario {
    char name[128];
    char url[512];       /* the real server's URL; requests go to the proxy */
    char proxied[600];   /* the same through the proxy */
    bool post_echo;      /* POST the id, the body must come back */
    int concurrency;
    int64_t duration;
    tp_chaos_fault fault; /* in force from the start */
    tp_chaos_step *steps;
    size_t nsteps;
    int64_t header_timeout, request_timeout;
    int64_t max_per_key;
    int64_t recovery_within;
    int64_t max_opens_after_heal; /* -1: twice the concurrency */
    unsigned allowed;             /* bit per -tp_err of the failures the faults explain */
} scenario;

typedef struct run {
    const scenario *sc;
    tp_http_client *c;
    int64_t t0, heal; /* heal: when the last step ends, from t0; -1: no heal */
    atomic_bool stop;
    _Atomic uint64_t ok, misdelivered, gauge_breaks, samples, failed_after_heal;
    _Atomic uint64_t failed_by[NERR];
    _Atomic int64_t first_ok_after_heal; /* ns from t0; -1 */
    _Atomic uint64_t opens_at_heal;      /* the pool's opens when the heal came */
    atomic_bool heal_seen;
} run;

typedef struct wk {
    run *r;
    int id;
} wk;

static bool dur_of(json_t *v, int64_t *out)
{
    char text[64];
    if (json_is_string(v))
        snprintf(text, sizeof text, "%s", json_string_value(v));
    else if (json_is_number(v))
        snprintf(text, sizeof text, "%.17g", json_number_value(v));
    else
        return false;
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    if (tp_chaos_fault_set(&f, "latency", text, NULL) != TP_OK) /* the one duration parser */
        return false;
    *out = f.latency;
    return true;
}

static int bad_scenario(const char *path, const char *what)
{
    fprintf(stderr, "tidepool chaos run: %s: %s\n", path, what);
    return 2;
}

/* tp_err names to a bit set (by -code). */
static bool err_bit(const char *name, unsigned *set)
{
    for (int i = 1; i < NERR && i < 32; i++)
        if (strcmp(tp_err_name((tp_err)-i), name) == 0) {
            *set |= 1u << i;
            return true;
        }
    return false;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap * 2 + 8192;
            char *b = realloc(buf, cap);
            if (b == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int load_scenario(const char *path, const char *url_override, scenario *sc)
{
    memset(sc, 0, sizeof *sc);
    tp_chaos_fault_init(&sc->fault);
    sc->concurrency = 4;
    sc->duration = 3 * TP_NSEC_PER_SEC;
    sc->header_timeout = TP_NSEC_PER_SEC;
    sc->request_timeout = 10 * TP_NSEC_PER_SEC;
    sc->max_per_key = 16;
    sc->recovery_within = TP_NSEC_PER_SEC;
    sc->max_opens_after_heal = -1;
    char *text = slurp(path);
    if (text == NULL)
        return bad_scenario(path, strerror(errno));
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    free(text);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return bad_scenario(path, root == NULL ? je.text : "not a JSON object");
    }
    int rc = 0;
    json_t *v;
    snprintf(sc->name, sizeof sc->name, "%s",
             json_is_string(v = json_object_get(root, "name")) ? json_string_value(v) : path);
    const char *url = url_override;
    if (url == NULL && json_is_string(v = json_object_get(root, "url")))
        url = json_string_value(v);
    if (url == NULL || strncmp(url, "http://", 7) != 0)
        rc = bad_scenario(path, "\"url\": an http:// URL of the real server is required");
    else
        snprintf(sc->url, sizeof sc->url, "%s", url);
    if (rc == 0 && (v = json_object_get(root, "method")) != NULL)
        sc->post_echo = json_is_string(v) && strcmp(json_string_value(v), "POST") == 0;
    if (rc == 0 && json_is_integer(v = json_object_get(root, "concurrency")))
        sc->concurrency = (int)json_integer_value(v);
    if (rc == 0 && (sc->concurrency < 1 || sc->concurrency > MAX_WORKERS))
        rc = bad_scenario(path, "concurrency: 1 to 256");
    struct {
        const char *key;
        int64_t *out;
    } durs[] = {{"duration", &sc->duration},
                {"response_header_timeout", &sc->header_timeout},
                {"request_timeout", &sc->request_timeout},
                {"recovery_within", &sc->recovery_within}};
    for (size_t i = 0; rc == 0 && i < sizeof durs / sizeof *durs; i++)
        if ((v = json_object_get(root, durs[i].key)) != NULL && !dur_of(v, durs[i].out))
            rc = bad_scenario(path, durs[i].key);
    if (rc == 0 && json_is_integer(v = json_object_get(root, "max_per_key")))
        sc->max_per_key = json_integer_value(v);
    if (rc == 0 && json_is_integer(v = json_object_get(root, "max_opens_after_heal")))
        sc->max_opens_after_heal = json_integer_value(v);
    tp_errinfo err;
    if (rc == 0 && (v = json_object_get(root, "fault")) != NULL) {
        char *f = json_dumps(v, 0);
        if (f == NULL || tp_chaos_fault_parse(f, &sc->fault, &err) != TP_OK)
            rc = bad_scenario(path, f == NULL ? "fault" : err.msg);
        free(f);
    }
    if (rc == 0 && (v = json_object_get(root, "schedule")) != NULL) {
        char *s = json_dumps(v, 0);
        if (s == NULL || tp_chaos_schedule_parse(s, &sc->steps, &sc->nsteps, &err) != TP_OK)
            rc = bad_scenario(path, s == NULL ? "schedule" : err.msg);
        free(s);
    }
    const char *dflt[] = {"TP_ECONNRESET", "TP_ECONNREFUSED", "TP_EHDRTIMEDOUT",
                          "TP_ETIMEDOUT",  "TP_EBREAKER",     "TP_EREQTIMEDOUT",
                          "TP_ECONNTIMEDOUT"};
    if (rc == 0 && json_is_array(v = json_object_get(root, "allowed_errors"))) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) || !err_bit(json_string_value(e), &sc->allowed))
                rc = bad_scenario(path, "allowed_errors: tp_err names (TP_ECONNRESET...)");
        }
    } else {
        for (size_t i = 0; i < sizeof dflt / sizeof *dflt; i++)
            (void)err_bit(dflt[i], &sc->allowed);
    }
    json_decref(root);
    if (rc != 0)
        return rc;
    if (sc->max_opens_after_heal < 0)
        sc->max_opens_after_heal = 2 * sc->concurrency;
    return 0;
}

/* ---- the load -------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    wk *w = arg;
    run *r = w->r;
    const scenario *sc = r->sc;
    char id[64], url[700];
    for (uint64_t n = 0; !atomic_load(&r->stop); n++) {
        snprintf(id, sizeof id, "tidepool-chaos-%d-%llu", w->id, (unsigned long long)n);
        tp_http_request req = {.timeout = TP_DURATION_DEFAULT};
        if (sc->post_echo) {
            req.method = "POST";
            req.url = sc->proxied;
            req.body = id;
            req.body_len = strlen(id);
        } else {
            snprintf(url, sizeof url, "%s%cid=%s", sc->proxied,
                     strchr(sc->proxied, '?') != NULL ? '&' : '?', id);
            req.method = "GET";
            req.url = url;
        }
        int64_t start = tp_clock_now() - r->t0;
        tp_http_response *resp = NULL;
        tp_err rc = tp_http_client_do(r->c, &req, &resp, NULL);
        int64_t end = tp_clock_now() - r->t0;
        if (rc == TP_OK) {
            int st = tp_http_response_status(resp);
            size_t len;
            const char *body = tp_http_response_body(resp, &len);
            bool right = st >= 200 && st < 300 &&
                         (!sc->post_echo || (len == strlen(id) && memcmp(body, id, len) == 0));
            atomic_fetch_add(right ? &r->ok : &r->misdelivered, 1);
            tp_http_response_free(resp);
            if (right && r->heal >= 0 && end >= r->heal) {
                int64_t none = -1;
                atomic_compare_exchange_strong(&r->first_ok_after_heal, &none, end);
            }
        } else {
            atomic_fetch_add(&r->failed_by[-rc > 0 && -rc < NERR ? -rc : 0], 1);
            if (r->heal >= 0 && start >= r->heal + sc->recovery_within)
                atomic_fetch_add(&r->failed_after_heal, 1);
            usleep(1000); /* a failing client does not spin */
        }
    }
    return NULL;
}

static void *sampler_main(void *arg)
{
    run *r = arg;
    tp_pool *p = tp_http_client_pool(r->c);
    while (!atomic_load(&r->stop)) {
        tp_stats st;
        tp_pool_stats(p, &st);
        if (st.idle + st.in_use + st.opening != st.total)
            atomic_fetch_add(&r->gauge_breaks, 1);
        atomic_fetch_add(&r->samples, 1);
        if (r->heal >= 0 && !atomic_load(&r->heal_seen) && tp_clock_now() - r->t0 >= r->heal) {
            atomic_store(&r->opens_at_heal, st.opens);
            atomic_store(&r->heal_seen, true);
        }
        usleep(2000);
    }
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

static tp_err client_new(const scenario *sc, tp_http_client **out, tp_errinfo *err)
{
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    co.response_header_timeout = sc->header_timeout;
    co.request_timeout = sc->request_timeout;
    co.pool.max_per_key = sc->max_per_key;
    return tp_http_client_create(&co, out, err);
}

/* ---- verdicts -------------------------------------------------------------------- */

typedef struct verdicts {
    bool json, all;
    int n;
    char buf[8192];
    size_t len;
} verdicts;

static void verdict(verdicts *v, const char *name, bool pass, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void verdict(verdicts *v, const char *name, bool pass, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    v->all = v->all && pass;
    if (!v->json)
        printf("%s  %-22s %s\n", pass ? "PASS" : "FAIL", name, detail);
    else if (v->len < sizeof v->buf)
        v->len += (size_t)snprintf(v->buf + v->len, sizeof v->buf - v->len,
                                   "%s{\"name\": \"%s\", \"pass\": %s, \"detail\": \"%s\"}",
                                   v->n > 0 ? ", " : "", name, pass ? "true" : "false", detail);
    v->n++;
}

static int run_scenario(const scenario *sc, bool json)
{
    /* The proxy in front of the URL's host:port; requests keep the URL's path. */
    const char *hp = sc->url + 7;
    const char *slash = strchr(hp, '/');
    char host[256];
    size_t hl = slash != NULL ? (size_t)(slash - hp) : strlen(hp);
    snprintf(host, sizeof host, "%.*s", (int)hl, hp);
    char *colon = strrchr(host, ':');
    uint16_t port = 80;
    if (colon != NULL) {
        *colon = '\0';
        port = (uint16_t)atoi(colon + 1);
    }
    /* Start the library's threads once, straight to the server (they keep their
     * descriptors for the process's life), then count. */
    tp_http_client *c;
    tp_errinfo err;
    if (client_new(sc, &c, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        return 2;
    }
    tp_http_response *warm = NULL;
    tp_err wrc = tp_http_get(c, sc->url, &warm, NULL);
    (void)wrc; /* only the threads it starts matter */
    tp_http_response_free(warm);
    tp_http_client_destroy(c);
    int fds_before = count_fds();

    tp_chaos_options o;
    tp_chaos_options_init(&o);
    o.upstream_host = host;
    o.upstream_port = port;
    o.fault = sc->fault;
    tp_chaos *px;
    if (tp_chaos_start(&o, &px, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        return 2;
    }
    scenario s = *sc;
    snprintf(s.proxied, sizeof s.proxied, "http://127.0.0.1:%u%s",
             (unsigned)tp_chaos_port(px), slash != NULL ? slash : "/");


    static run r;
    memset(&r, 0, sizeof r);
    r.sc = &s;
    atomic_store(&r.first_ok_after_heal, -1);
    r.heal = -1;
    for (size_t i = 0; i < s.nsteps; i++)
    {
        int64_t e = s.steps[i].at + (s.steps[i].duration > 0 ? s.steps[i].duration : 0);
        r.heal = e > r.heal ? e : r.heal;
    }
    if (client_new(&s, &r.c, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        tp_chaos_stop(px);
        return 2;
    }
    r.t0 = tp_clock_now();
    if (s.nsteps > 0 && tp_chaos_schedule(px, s.steps, s.nsteps, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        tp_http_client_destroy(r.c);
        tp_chaos_stop(px);
        return 2;
    }
    pthread_t t[MAX_WORKERS], smp;
    wk w[MAX_WORKERS];
    for (int i = 0; i < s.concurrency; i++) {
        w[i] = (wk){&r, i};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    pthread_create(&smp, NULL, sampler_main, &r);
    int64_t end = r.t0 + s.duration;
    while (tp_clock_now() < end)
        usleep(10000);
    atomic_store(&r.stop, true);
    for (int i = 0; i < s.concurrency; i++)
        pthread_join(t[i], NULL);
    pthread_join(smp, NULL);

    tp_stats st;
    tp_pool_stats(tp_http_client_pool(r.c), &st);
    tp_http_client_destroy(r.c);
    tp_chaos_counters k;
    tp_chaos_counters_read(px, &k);
    tp_chaos_stop(px); /* half-open links too: only the client's descriptors are counted */
    int fds_after = count_fds();

    uint64_t failed = 0, unexplained = 0;
    char kinds[512] = "";
    size_t kl = 0;
    for (int i = 0; i < NERR; i++) {
        uint64_t n = atomic_load(&r.failed_by[i]);
        if (n == 0)
            continue;
        failed += n;
        if (i >= 32 || !(s.allowed & (1u << i)))
            unexplained += n;
        kl += (size_t)snprintf(kinds + kl, kl < sizeof kinds ? sizeof kinds - kl : 0,
                               "%s%s %llu", kl > 0 ? ", " : "",
                               i > 0 ? tp_err_name((tp_err)-i) : "other",
                               (unsigned long long)n);
        if (kl >= sizeof kinds)
            kl = sizeof kinds - 1;
    }
    verdicts v = {.json = json, .all = true};
    if (!json)
        printf("scenario: %s (%llu ok, %llu failed%s%s%s; proxy: %llu accepted, %llu resets)\n",
               s.name, (unsigned long long)r.ok, (unsigned long long)failed,
               failed > 0 ? ": " : "", kinds, "", (unsigned long long)k.accepted,
               (unsigned long long)k.resets);
    verdict(&v, "no_misdelivery", r.misdelivered == 0, "%llu of %llu responses for another request",
            (unsigned long long)r.misdelivered, (unsigned long long)(r.ok + r.misdelivered));
    verdict(&v, "gauges_consistent", r.gauge_breaks == 0,
            "idle + in_use + opening != total in %llu of %llu samples",
            (unsigned long long)r.gauge_breaks, (unsigned long long)r.samples);
    verdict(&v, "no_leaked_lease", st.in_use == 0, "%lld leases out after the load",
            (long long)st.in_use);
    verdict(&v, "no_leaked_fd", fds_after == fds_before, "%d descriptors after, %d before",
            fds_after, fds_before);
    verdict(&v, "only_explained_errors", unexplained == 0, "%llu failures of kinds no fault explains",
            (unsigned long long)unexplained);
    verdict(&v, "progress", r.ok > 0, "%llu requests served", (unsigned long long)r.ok);
    if (r.heal >= 0 && r.heal < s.duration) {
        int64_t first = atomic_load(&r.first_ok_after_heal);
        verdict(&v, "recovery", first >= 0 && first - r.heal <= s.recovery_within,
                "first success %.0f ms after the heal (bound %.0f ms)",
                first >= 0 ? (double)(first - r.heal) / 1e6 : -1.0,
                (double)s.recovery_within / 1e6);
        verdict(&v, "no_failure_after_heal", r.failed_after_heal == 0,
                "%llu failures started later than the heal + the recovery bound",
                (unsigned long long)r.failed_after_heal);
        uint64_t opens_after = st.opens - atomic_load(&r.opens_at_heal);
        verdict(&v, "no_reconnect_storm", (int64_t)opens_after <= s.max_opens_after_heal,
                "%llu opens after the heal (bound %lld)", (unsigned long long)opens_after,
                (long long)s.max_opens_after_heal);
    }
    int64_t p99 = tp_histogram_quantile(&st.acquire_wait, 0.99);
    tp_pool_options dflt;
    tp_pool_options_init(&dflt);
    verdict(&v, "acquire_p99", p99 <= dflt.acquire_timeout, "acquire wait p99 %.1f ms (timeout %.0f ms)",
            (double)p99 / 1e6, (double)dflt.acquire_timeout / 1e6);
    if (json)
        printf("{\"scenario\": \"%s\", \"ok\": %llu, \"failed\": %llu, \"misdelivered\": %llu, "
               "\"opens\": %llu, \"verdicts\": [%s], \"pass\": %s}\n",
               s.name, (unsigned long long)r.ok, (unsigned long long)failed,
               (unsigned long long)r.misdelivered, (unsigned long long)st.opens, v.buf,
               v.all ? "true" : "false");
    else
        printf("%s\n", v.all ? "PASS" : "FAIL");
    return v.all ? 0 : 1;
}

int cmd_chaos_run(int argc, char **argv)
{
    const char *path = NULL, *url = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: tidepool chaos run SCENARIO.json [--url URL] [--json]\n\n"
                   "Runs the scenario's load through a tidepool pool and the fault proxy in\n"
                   "front of its server (--url replaces the scenario's), applies its\n"
                   "schedule and prints a verdict per assertion. See scenarios/.\n");
            return 0;
        } else if (path == NULL && argv[i][0] != '-')
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
    scenario sc;
    int rc = load_scenario(path, url, &sc);
    if (rc != 0)
        return rc;
    rc = run_scenario(&sc, json);
    tp_free(sc.steps);
    return rc;
}

#else /* !TIDEPOOL_HAVE_JANSSON */

int cmd_chaos_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tidepool chaos run: built without jansson (scenarios are JSON)\n");
    return 2;
}

#endif
