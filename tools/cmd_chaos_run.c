/* cmd_chaos_run.c: `tidepool chaos run SCENARIO.json`: the fault proxy in front of a real
 * server (HTTP through the blocking call or the engine, PostgreSQL, Redis), load through
 * a tidepool pool, the scenario's schedule of faults, and a verdict per assertion. Each
 * request carries its own id (the body of a POST to an echoing location or the query of
 * a GET, SELECT 'id', ECHO id), so a response handed to the wrong request is caught; a
 * sampler reads the pool's gauges every 2 ms; the process's descriptors are counted
 * before and after. Exit status 0 when every verdict passes, 1 when one fails, 2 for a
 * bad scenario. */
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

typedef enum kind { K_HTTP, K_ENGINE, K_PG, K_REDIS } kind;

typedef struct scenario {
    char name[128];
    kind k;
    char url[512];       /* the real server's URL; requests go to the proxy */
    char proxied[600];   /* the same through the proxy */
    char host[256];      /* the real server */
    uint16_t port;
    bool post_echo;      /* POST the id, the body must come back */
    int concurrency;
    int64_t duration;
    tp_chaos_fault fault; /* in force from the start */
    tp_chaos_step *steps;
    size_t nsteps;
    int64_t header_timeout, request_timeout;
    int64_t connect_timeout; /* the pool's; 0: its default */
    int64_t max_per_key;
    int64_t recovery_within;
    int64_t max_opens_after_heal; /* -1: twice the concurrency */
    bool expect_breaker;          /* the outage is long enough to open the breaker */
    unsigned allowed;             /* bit per -tp_err of the failures the faults explain */
} scenario;

typedef struct target target;

typedef struct run {
    const scenario *sc;
    target *t;
    char prefix[48]; /* of this run's ids: tc<pid>-<clock>, unique in a shared server log */
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

static int load_scenario(const char *path, const char *url_override,
                         const char *client_override, scenario *sc)
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
    for (char *c = sc->name; *c != '\0'; c++) /* it is printed inside JSON strings */
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '\'';
    const char *url = url_override;
    if (url == NULL && json_is_string(v = json_object_get(root, "url")))
        url = json_string_value(v);
    if (url == NULL)
        rc = bad_scenario(path, "\"url\": the real server's URL is required");
    else if (strncmp(url, "http://", 7) == 0)
        sc->k = K_HTTP;
    else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        sc->k = K_PG;
    else if (strncmp(url, "redis://", 8) == 0)
        sc->k = K_REDIS;
    else
        rc = bad_scenario(path, "\"url\": http://, postgres:// or redis://");
    if (rc == 0)
        snprintf(sc->url, sizeof sc->url, "%s", url);
    const char *client = client_override;
    if (client == NULL && json_is_string(v = json_object_get(root, "client")))
        client = json_string_value(v);
    if (rc == 0 && client != NULL) {
        if (strcmp(client, "engine") == 0 && sc->k == K_HTTP)
            sc->k = K_ENGINE;
        else if (strcmp(client, "blocking") != 0 && strcmp(client, "engine") != 0)
            rc = bad_scenario(path, "\"client\": \"blocking\" or \"engine\"");
    }
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
                {"recovery_within", &sc->recovery_within},
                {"connect_timeout", &sc->connect_timeout}};
    for (size_t i = 0; rc == 0 && i < sizeof durs / sizeof *durs; i++)
        if ((v = json_object_get(root, durs[i].key)) != NULL && !dur_of(v, durs[i].out))
            rc = bad_scenario(path, durs[i].key);
    if (rc == 0 && json_is_integer(v = json_object_get(root, "max_per_key")))
        sc->max_per_key = json_integer_value(v);
    if (rc == 0 && json_is_integer(v = json_object_get(root, "max_opens_after_heal")))
        sc->max_opens_after_heal = json_integer_value(v);
    if (rc == 0 && json_is_boolean(v = json_object_get(root, "expect_breaker")))
        sc->expect_breaker = json_is_true(v);
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
    if (rc != 0) {
        tp_free(sc->steps); /* a schedule read before a later member failed */
        sc->steps = NULL;
        return rc;
    }
    if (sc->max_opens_after_heal < 0)
        sc->max_opens_after_heal = 2 * sc->concurrency;
    return 0;
}

/* ---- targets: the client a scenario drives, and one request carrying its id -------- */

/* The pool of one kind, made for url (the real server's, or the proxied one). */
typedef struct target {
    kind k;
    tp_http_client *http;
    tp_pg_pool *pg;
    tp_redis_pool *rd;
} target;

static tp_err target_new(const scenario *sc, const char *url, target *t, tp_errinfo *err)
{
    memset(t, 0, sizeof *t);
    t->k = sc->k;
    tp_pool_options po;
    tp_pool_options_init(&po);
    po.max_per_key = sc->max_per_key;
    if (sc->connect_timeout > 0)
        po.connect_timeout = sc->connect_timeout;
    if (t->k == K_PG) {
        tp_pg_options o;
        tp_pg_options_init(&o);
        o.pool = po;
        o.query_timeout = sc->header_timeout;
        tp_err rc = tp_pg_pool_create(&o, &t->pg, err);
        tp_pg_target *tg;
        if (rc == TP_OK && (rc = tp_pg_pool_add(t->pg, url, &tg, err)) != TP_OK)
            tp_pg_pool_destroy(t->pg);
        return rc;
    }
    if (t->k == K_REDIS) {
        tp_redis_options o;
        tp_redis_options_init(&o);
        o.url = url;
        o.pool = po;
        o.command_timeout = sc->header_timeout;
        return tp_redis_pool_create(&o, &t->rd, err);
    }
    tp_http_client_options co;
    tp_http_client_options_init(&co);
    co.response_header_timeout = sc->header_timeout;
    co.request_timeout = sc->request_timeout;
    co.pool.max_per_key = sc->max_per_key; /* the client's own defaults otherwise */
    if (sc->connect_timeout > 0)
        co.pool.connect_timeout = sc->connect_timeout;
    return tp_http_client_create(&co, &t->http, err);
}

static tp_pool *target_pool(const target *t)
{
    return t->k == K_PG      ? tp_pg_pool_tp(t->pg)
           : t->k == K_REDIS ? tp_redis_pool_tp(t->rd)
                             : tp_http_client_pool(t->http);
}

static void target_free(target *t)
{
    tp_pg_pool_destroy(t->pg);
    tp_redis_pool_destroy(t->rd);
    tp_http_client_destroy(t->http);
}

typedef struct engine_done {
    bool done;
    tp_err rc;
    tp_http_response *resp;
} engine_done;

static void on_engine_done(void *ud, tp_err rc, tp_http_response *resp, const tp_errinfo *err)
{
    (void)err;
    engine_done *d = ud;
    d->rc = rc;
    d->resp = resp;
    d->done = true;
}

/* One request for id to url (the proxied one) through t (eng: the worker's engine for
 * K_ENGINE). TP_OK with *right telling whether the answer was this request's. */
static tp_err request_once(const scenario *sc, target *t, tp_http_engine *eng, const char *url,
                           const char *id, bool *right)
{
    *right = false;
    size_t idlen = strlen(id);
    if (t->k == K_PG) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT '%s'", id); /* ids are [a-z0-9-]: no quoting */
        struct pg_result *res = NULL;
        tp_err rc = tp_pg_exec(t->pg, NULL, sql, &res, NULL);
        const char *v = tp_pg_result_value(res, 0, 0);
        *right = rc == TP_OK && v != NULL && strcmp(v, id) == 0;
        tp_pg_result_free(res);
        return rc;
    }
    if (t->k == K_REDIS) {
        tp_redis_lease *l = NULL;
        tp_err rc = tp_redis_acquire(t->rd, TP_DURATION_DEFAULT, &l, NULL);
        if (rc != TP_OK)
            return rc;
        struct redisReply *reply = NULL;
        rc = tp_redis_command(l, &reply, NULL, "ECHO %s", id);
        size_t len;
        const char *v = tp_redis_reply_str(reply, &len);
        *right = rc == TP_OK && v != NULL && len == idlen && memcmp(v, id, len) == 0;
        tp_redis_reply_free(reply);
        tp_redis_release(l, 0);
        return rc;
    }
    /* The id in the query too: a server's access log then shows what it received. */
    char id_url[700];
    snprintf(id_url, sizeof id_url, "%s%cid=%s", url, strchr(url, '?') != NULL ? '&' : '?', id);
    tp_http_request req = {.timeout = TP_DURATION_DEFAULT, .url = id_url, .method = "GET"};
    if (sc->post_echo) {
        req.method = "POST";
        req.body = id;
        req.body_len = idlen;
    }
    tp_http_response *resp = NULL;
    tp_err rc;
    if (t->k == K_ENGINE) {
        engine_done d = {0};
        rc = tp_http_engine_submit(eng, &req, on_engine_done, &d, NULL, NULL);
        while (rc == TP_OK && !d.done)
            (void)tp_http_engine_poll(eng, 100 * TP_NSEC_PER_MSEC);
        if (rc == TP_OK)
            rc = d.rc;
        resp = d.resp;
    } else {
        rc = tp_http_client_do(t->http, &req, &resp, NULL);
    }
    if (rc == TP_OK) {
        int st = tp_http_response_status(resp);
        size_t len;
        const char *body = tp_http_response_body(resp, &len);
        *right = st >= 200 && st < 300 &&
                 (!sc->post_echo || (len == idlen && memcmp(body, id, len) == 0));
    }
    tp_http_response_free(resp);
    return rc;
}

/* url with its host:port replaced by 127.0.0.1:port (userinfo, path and query kept);
 * *host and *hport receive what it named (80, 5432 or 6379 when it names no port). */
static bool rewrite_url(const char *url, uint16_t port, char *out, size_t cap, char *host,
                        size_t hcap, uint16_t *hport, uint16_t dflt)
{
    const char *auth = strstr(url, "://");
    if (auth == NULL)
        return false;
    auth += 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    const char *hp = at != NULL ? at + 1 : auth;
    size_t hplen = alen - (size_t)(hp - auth);
    const char *colon = memchr(hp, ':', hplen);
    size_t hlen = colon != NULL ? (size_t)(colon - hp) : hplen;
    if (hlen == 0 || hlen >= hcap)
        return false;
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    *hport = colon != NULL ? (uint16_t)atoi(colon + 1) : dflt;
    int n = snprintf(out, cap, "%.*s127.0.0.1:%u%s", (int)(hp - url), url, (unsigned)port,
                     auth + alen);
    return n > 0 && (size_t)n < cap;
}

/* ---- the load -------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    wk *w = arg;
    run *r = w->r;
    const scenario *sc = r->sc;
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
        tp_err rc = request_once(sc, r->t, eng, sc->proxied, id, &right);
        int64_t end = tp_clock_now() - r->t0;
        if (rc == TP_OK) {
            atomic_fetch_add(right ? &r->ok : &r->misdelivered, 1);
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
    tp_http_engine_destroy(eng);
    return NULL;
}

static void *sampler_main(void *arg)
{
    run *r = arg;
    tp_pool *p = target_pool(r->t);
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
        printf("%s  %-26s %s\n", pass ? "PASS" : "FAIL", name, detail);
    else if (v->len < sizeof v->buf)
        v->len += (size_t)snprintf(v->buf + v->len, sizeof v->buf - v->len,
                                   "%s{\"name\": \"%s\", \"pass\": %s, \"detail\": \"%s\"}",
                                   v->n > 0 ? ", " : "", name, pass ? "true" : "false", detail);
    v->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What the server's log (one request URI a line) shows of this run's ids: how many it
 * received, and how many of those more than once. False if the log cannot be read. */
static bool server_view(const char *log, const char *prefix, uint64_t *seen, uint64_t *twice)
{
    *seen = *twice = 0;
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return false;
    char needle[64];
    snprintf(needle, sizeof needle, "id=%s-", prefix);
    size_t n = 0, cap = 0;
    char **ids = NULL, line[1024];
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = strstr(line, needle);
        if (p == NULL)
            continue;
        p += 3;
        p[strcspn(p, "&\r\n ")] = '\0';
        if (n == cap) {
            cap = cap * 2 + 1024;
            char **bigger = realloc(ids, cap * sizeof *ids);
            if (bigger == NULL)
                break;
            ids = bigger;
        }
        if ((ids[n] = strdup(p)) != NULL)
            n++;
    }
    fclose(f);
    qsort(ids, n, sizeof *ids, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(ids[i], ids[i - 1]) == 0)
            (*twice)++;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    *seen = n;
    return true;
}

static int run_scenario(const scenario *sc, bool json, const char *server_log)
{
    scenario s = *sc;
    uint16_t dflt = s.k == K_PG ? 5432 : s.k == K_REDIS ? 6379 : 80;
    char scratch[600];
    if (!rewrite_url(s.url, 1, scratch, sizeof scratch, s.host, sizeof s.host, &s.port, dflt)) {
        fprintf(stderr, "tidepool chaos run: cannot read host and port in %s\n", s.url);
        return 2;
    }
    /* Start the library's threads once, straight to the server (they keep their
     * descriptors for the process's life), then count. */
    target warm;
    tp_errinfo err;
    if (target_new(&s, s.url, &warm, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        return 2;
    }
    tp_http_engine *weng = NULL;
    bool right;
    if (warm.k != K_ENGINE || tp_http_engine_create(warm.http, &weng, NULL) == TP_OK)
        (void)request_once(&s, &warm, weng, s.url, "warm-up", &right);
    tp_http_engine_destroy(weng);
    target_free(&warm);
    int fds_before = count_fds();

    tp_chaos_options o;
    tp_chaos_options_init(&o);
    o.upstream_host = s.host;
    o.upstream_port = s.port;
    o.fault = s.fault;
    tp_chaos *px;
    if (tp_chaos_start(&o, &px, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        return 2;
    }
    char host[256];
    uint16_t hport;
    (void)rewrite_url(s.url, tp_chaos_port(px), s.proxied, sizeof s.proxied, host, sizeof host,
                      &hport, dflt);

    static run r;
    static target t;
    memset(&r, 0, sizeof r);
    r.sc = &s;
    r.t = &t;
    snprintf(r.prefix, sizeof r.prefix, "tc%ld-%llx", (long)getpid(),
             (unsigned long long)(tp_clock_now() & 0xffffffffffull));
    atomic_store(&r.first_ok_after_heal, -1);
    r.heal = -1;
    for (size_t i = 0; i < s.nsteps; i++)
    {
        int64_t e = s.steps[i].at + (s.steps[i].duration > 0 ? s.steps[i].duration : 0);
        r.heal = e > r.heal ? e : r.heal;
    }
    if (target_new(&s, s.proxied, &t, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        tp_chaos_stop(px);
        return 2;
    }
    r.t0 = tp_clock_now();
    if (s.nsteps > 0 && tp_chaos_schedule(px, s.steps, s.nsteps, &err) != TP_OK) {
        fprintf(stderr, "tidepool chaos run: %s\n", err.msg);
        target_free(&t);
        tp_chaos_stop(px);
        return 2;
    }
    pthread_t th[MAX_WORKERS], smp;
    wk w[MAX_WORKERS];
    for (int i = 0; i < s.concurrency; i++) {
        w[i] = (wk){&r, i};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    pthread_create(&smp, NULL, sampler_main, &r);
    int64_t end = r.t0 + s.duration;
    while (tp_clock_now() < end)
        usleep(10000);
    atomic_store(&r.stop, true);
    for (int i = 0; i < s.concurrency; i++)
        pthread_join(th[i], NULL);
    pthread_join(smp, NULL);

    tp_stats st;
    tp_pool_stats(target_pool(&t), &st);
    target_free(&t);
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
    if (server_log != NULL && (s.k == K_HTTP || s.k == K_ENGINE)) {
        /* A server logs a request after its answer is out: the last few lines may come
         * a moment after the client has its response. Read until the log is still. */
        uint64_t seen = 0, twice = 0, before = UINT64_MAX;
        bool read = false;
        for (int i = 0; i < 20 && seen != before; i++) {
            before = seen;
            if (i > 0)
                usleep(50000);
            read = server_view(server_log, r.prefix, &seen, &twice);
        }
        /* A POST is never retried once it may have reached the server: each id at most
         * once. And every answered request was received. */
        verdict(&v, s.post_echo ? "post_at_most_once" : "server_view",
                read && twice == 0 && seen >= r.ok + r.misdelivered,
                "the server received %llu of this run's requests, %llu of them twice or more; "
                "%llu answered%s",
                (unsigned long long)seen, (unsigned long long)twice,
                (unsigned long long)(r.ok + r.misdelivered), read ? "" : " (log unreadable)");
    }
    if (s.expect_breaker)
        verdict(&v, "breaker_opens_and_closes",
                st.rejects_breaker > 0 && atomic_load(&r.first_ok_after_heal) >= 0,
                "%llu acquires refused while it was open; served again after the heal: %s",
                (unsigned long long)st.rejects_breaker,
                atomic_load(&r.first_ok_after_heal) >= 0 ? "yes" : "no");
    int64_t p99 = tp_histogram_quantile(&st.acquire_wait, 0.99);
    tp_pool_options po;
    tp_pool_options_init(&po);
    verdict(&v, "acquire_p99", p99 <= po.acquire_timeout, "acquire wait p99 %.1f ms (timeout %.0f ms)",
            (double)p99 / 1e6, (double)po.acquire_timeout / 1e6);
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
    const char *path = NULL, *url = NULL, *client = NULL, *server_log = NULL;
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
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: tidepool chaos run SCENARIO.json [--url URL] [--client blocking|engine]\n"
                   "                          [--server-log FILE] [--json]\n\n"
                   "Runs the scenario's load through a tidepool pool and the fault proxy in\n"
                   "front of its server (--url and --client replace the scenario's; the engine\n"
                   "is for http:// only, a database URL ignores it), applies its schedule\n"
                   "and prints a verdict per assertion. --server-log names the server's log\n"
                   "of request URIs (each request carries ?id=): a POST must reach the server\n"
                   "at most once. See scenarios/ and docs/chaos.md.\n");
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
    int rc = load_scenario(path, url, client, &sc);
    if (rc != 0)
        return rc;
    rc = run_scenario(&sc, json, server_log);
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
