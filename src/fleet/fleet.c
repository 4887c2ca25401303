/* fleet.c: a fleet budget's life: the checks of its options, create (connect, load the
 * scripts, the first heartbeat, then the thread), attaching the pools it serves, its
 * numbers, destroy (leave the budget so the permits return at once). */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/workq.h"
#include "fleet_internal.h"

/* Names go into Redis keys and JSON unquoted: a small alphabet. */
static bool name_ok(const char *s, size_t max, bool slash)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-' || (slash && c == '/');
        if (!ok)
            return false;
    }
    return true;
}

#define BAD(...) tp_errinfo_set(err, TP_EINVAL, 0, __VA_ARGS__)

static tp_err validate(const tp_fleet_options *o, tp_errinfo *err)
{
    if (o == NULL)
        return BAD("options: NULL");
    if (o->version != TP_FLEET_OPTIONS_VERSION)
        return BAD("version: %u is not TP_FLEET_OPTIONS_VERSION; call tp_fleet_options_init()",
                   o->version);
    if (o->redis_url == NULL || o->redis_url[0] == '\0')
        return BAD("redis_url: required (redis://HOST:PORT)");
    if (o->name == NULL || !name_ok(o->name, TP_FLEET_NAME_MAX, false))
        return BAD("name: want 1 to %d bytes of A-Z a-z 0-9 _ . : - (got %s%.*s%s)",
                   TP_FLEET_NAME_MAX, o->name ? "\"" : "", o->name ? 80 : 4,
                   o->name ? o->name : "NULL", o->name && strlen(o->name) > 80 ? "...\"" : "\"");
    if (o->instance != NULL && !name_ok(o->instance, TP_FLEET_INSTANCE_MAX, true))
        return BAD("instance: want 1 to %d bytes of A-Z a-z 0-9 _ . : - /", TP_FLEET_INSTANCE_MAX);
    if (o->cap <= 0)
        return BAD("cap: %lld; want at least 1 connection", (long long)o->cap);
    if (o->heartbeat < TP_NSEC_PER_MSEC)
        return BAD("heartbeat: want at least 1 ms");
    if (!(o->heartbeat_jitter >= 0 && o->heartbeat_jitter < 1))
        return BAD("heartbeat_jitter: want a fraction in [0, 1)");
    if (o->lease <= 2 * o->heartbeat)
        return BAD("lease: %.0f ms; want more than 2 heartbeats (%.0f ms)", (double)o->lease / 1e6,
                   2.0 * (double)o->heartbeat / 1e6);
    if (o->redis_timeout < TP_NSEC_PER_MSEC)
        return BAD("redis_timeout: want at least 1 ms");
    if (o->unreachable != TP_FLEET_DEGRADED && o->unreachable != TP_FLEET_FAIL_OPEN &&
        o->unreachable != TP_FLEET_FAIL_CLOSED)
        return BAD("unreachable: %d is not a tp_fleet_unreachable", (int)o->unreachable);
    return TP_OK;
}

static void free_fleet(tp_fleet *f)
{
    tp__fleet_disconnect(&f->r);
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->idle);
    pthread_mutex_destroy(&f->mu);
    volatile char *pw = f->r.password; /* volatile: the wipe may not be dropped */
    for (size_t i = 0; i < sizeof f->r.password; i++)
        pw[i] = 0;
    tp__free(f);
}

tp_err tp_fleet_create(const tp_fleet_options *o, tp_fleet **out, tp_errinfo *err)
{
    if (out == NULL)
        return BAD("out: NULL");
    *out = NULL;
    tp_err rc = validate(o, err);
    if (rc != TP_OK)
        return rc;
    tp_fleet *f = tp__calloc(1, sizeof *f);
    if (f == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a fleet");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool sync_ok = pthread_mutex_init(&f->mu, NULL) == 0 && pthread_cond_init(&f->cv, &ca) == 0 &&
                   pthread_cond_init(&f->idle, NULL) == 0;
    pthread_condattr_destroy(&ca);
    if (!sync_ok) {
        tp__free(f);
        return tp_errinfo_set(err, TP_ESYS, 0, "creating the fleet's lock");
    }
    f->o = *o;
    snprintf(f->url, sizeof f->url, "%s", o->redis_url);
    snprintf(f->name, sizeof f->name, "%s", o->name);
    if (o->instance != NULL) {
        snprintf(f->instance, sizeof f->instance, "%s", o->instance);
    } else {
        char host[64] = "host";
        (void)gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        for (char *p = host; *p; p++) /* keep the alphabet */
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
                *p = '_';
        snprintf(f->instance, sizeof f->instance, "%s/%ld/%08x", host, (long)getpid(),
                 (unsigned)(tp__rand_unit() * 4294967295.0));
    }
    f->o.redis_url = f->url;
    f->o.name = f->name;
    f->o.instance = f->instance;
    f->r.timeout = o->redis_timeout;
    atomic_store(&f->ceiling, INT64_MAX);
    tp__fleet_hook_init(f);
    rc = tp__fleet_parse_url(&f->r, f->url, f->name, err);
    if (rc == TP_OK)
        rc = tp__fleet_connect(&f->r, err);
    if (rc == TP_OK)
        rc = tp__fleet_heartbeat(f, err);
    if (rc == TP_OK && tp__thread_start(&f->thread, tp__fleet_thread, f) != 0)
        rc = tp_errinfo_set(err, TP_ESYS, 0, "starting the fleet's thread");
    if (rc != TP_OK) {
        if (rc == TP_EPROTO) /* a script Redis would not run: unusable all the same */
            rc = TP_EUNAVAIL;
        free_fleet(f);
        return rc;
    }
    f->started = true;
    *out = f;
    return TP_OK;
}

const tp_permit_hook *tp_fleet_hook(tp_fleet *f)
{
    return f != NULL ? &f->hook : NULL;
}

tp_err tp_fleet_attach(tp_fleet *f, tp_pool *p)
{
    if (f == NULL || p == NULL)
        return TP_EINVAL;
    tp_err rc = TP_OK;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->npools; i++)
        if (f->pools[i] == p)
            rc = TP_ESTATE;
    if (rc == TP_OK && f->npools == TP__FLEET_POOLS_MAX)
        rc = TP_ESTATE;
    if (rc == TP_OK)
        f->pools[f->npools++] = p;
    f->kick = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void tp_fleet_destroy(tp_fleet *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->started)
        pthread_join(f->thread, NULL);
    if (f->r.c == NULL) {
        tp_errinfo e;
        (void)tp__fleet_connect(&f->r, &e); /* one try: else the lease lapses on its own */
    }
    const char *av[1] = {f->instance};
    redisReply *rep = NULL;
    tp_errinfo e;
    if (f->r.c != NULL && tp__fleet_eval(&f->r, TP__FLEET_LEAVE, 1, av, &rep, &e) == TP_OK)
        freeReplyObject(rep);
    free_fleet(f);
}

void tp_fleet_stats_get(tp_fleet *f, tp_fleet_stats *out)
{
    memset(out, 0, sizeof *out);
    if (f == NULL)
        return;
    out->cap = atomic_load(&f->cap);
    out->held = atomic_load(&f->allowance);
    int64_t h = atomic_load(&f->held);
    if (h > out->held)
        out->held = h; /* opened while degraded */
    out->share = atomic_load(&f->share);
    out->demand = atomic_load(&f->demand);
    out->fleet_held = atomic_load(&f->fleet_held);
    out->instances = atomic_load(&f->instances);
    out->degraded = atomic_load(&f->degraded);
    out->degraded_ns = atomic_load(&f->degraded_ns);
    if (out->degraded)
        out->degraded_ns += tp_clock_now() - atomic_load(&f->degraded_since);
    out->permit_waits = atomic_load(&f->permit_waits);
    out->grants = atomic_load(&f->grants);
    out->sheds = atomic_load(&f->sheds);
    out->heartbeats = atomic_load(&f->heartbeats);
    out->rebirths = atomic_load(&f->rebirths);
    out->redis_commands = atomic_load(&f->commands);
    out->redis_errors = atomic_load(&f->errors);
}

const char *tp_fleet_name(const tp_fleet *f)
{
    return f != NULL ? f->name : "";
}

const char *tp_fleet_instance(const tp_fleet *f)
{
    return f != NULL ? f->instance : "";
}

#endif
