/* registry.c: the tp_metrics registry (named, borrowed pools; borrowed fleet budgets)
 * and the render entry points.
 *
 * One mutex guards the lists of pools and fleets and is held for a whole render. That is
 * what makes tp_metrics_unregister() (and tp_metrics_unregister_fleet()) a safe point to
 * destroy a pool (a fleet): once it holds the lock, no
 * render is touching the pool, and none will again. Renders are therefore serialised;
 * they are short (a snapshot and some formatting) and scrapes are rare. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NAME_MAX_LEN 128

void tp_metrics_options_init(tp_metrics_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->version = TP_METRICS_OPTIONS_VERSION;
    o->max_keys_per_pool = 100;
    o->bucket_step = 2;
    o->key_label = NULL;
    o->key_label_ud = NULL;
}

tp_err tp_metrics_create(const tp_metrics_options *o, tp_metrics **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "tp_metrics_create: out is NULL");
    *out = NULL;
    tp_metrics_options defaults;
    if (o == NULL) {
        tp_metrics_options_init(&defaults);
        o = &defaults;
    }
    if (o->version != TP_METRICS_OPTIONS_VERSION)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "version: %u is not TP_METRICS_OPTIONS_VERSION (%u); call "
                              "tp_metrics_options_init()",
                              o->version, (unsigned)TP_METRICS_OPTIONS_VERSION);
    if (o->max_keys_per_pool < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "max_keys_per_pool: %lld is negative",
                              (long long)o->max_keys_per_pool);
    if (o->bucket_step < 1 || o->bucket_step > 8)
        return tp_errinfo_set(err, TP_EINVAL, 0, "bucket_step: %d is not in 1..8", o->bucket_step);
    tp_metrics *m = tp__calloc(1, sizeof *m);
    if (m == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the metrics registry");
    int rc = tp__mutex_init(&m->mu);
    if (rc != 0) {
        tp__free(m);
        return tp_errinfo_set(err, TP_ESYS, 0, "creating a lock failed");
    }
    tp__fork_guard_add(&m->fork_guard, &m->mu, TP__RANK_REGISTRY, NULL);
    m->o = *o;
    *out = m;
    return TP_OK;
}

void tp_metrics_destroy(tp_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        tp__free(m->entries[i].name);
    tp__free(m->entries);
    tp__free(m->fleets);
    tp__fork_guard_remove(&m->fork_guard);
    tp__mutex_destroy(&m->mu);
    tp__free(m);
}

/* The index of name in m's entries, or m->n. m->mu held. */
static size_t find_locked(const tp_metrics *m, const char *name)
{
    size_t i = 0;
    while (i < m->n && strcmp(m->entries[i].name, name) != 0)
        i++;
    return i;
}

static tp_err check_name(const char *name, tp_errinfo *err)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "tp_metrics_register: name must have 1 to %d characters (has %zu)",
                              NAME_MAX_LEN, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c >= 0x7f)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "tp_metrics_register: name has a non-printable byte 0x%02x "
                                  "at %zu (printable ASCII only)",
                                  c, i);
    }
    return TP_OK;
}

tp_err tp_metrics_register(tp_metrics *m, const char *name, tp_pool *pool, tp_errinfo *err)
{
    if (m == NULL || name == NULL || pool == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "tp_metrics_register: registry, name and pool are required");
    tp_err rc = check_name(name, err);
    if (rc != TP_OK)
        return rc;
    char *copy = tp__strdup(name);
    if (copy == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "copying the pool name");
    tp__mutex_lock(&m->mu);
    if (find_locked(m, name) < m->n) {
        tp__mutex_unlock(&m->mu);
        tp__free(copy);
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "tp_metrics_register: a pool named \"%s\" is already registered",
                              name);
    }
    if (m->n == m->cap) {
        size_t cap = m->cap > 0 ? 2 * m->cap : 4;
        tp__mentry *e = tp__realloc(m->entries, cap * sizeof *e);
        if (e == NULL) {
            tp__mutex_unlock(&m->mu);
            tp__free(copy);
            return tp_errinfo_set(err, TP_ENOMEM, 0, "growing the metrics registry");
        }
        m->entries = e;
        m->cap = cap;
    }
    m->entries[m->n++] = (tp__mentry){.name = copy, .pool = pool};
    tp__mutex_unlock(&m->mu);
    return TP_OK;
}

tp_err tp_metrics_unregister(tp_metrics *m, const char *name)
{
    if (m == NULL || name == NULL)
        return TP_EINVAL;
    tp__mutex_lock(&m->mu);
    size_t i = find_locked(m, name);
    if (i == m->n) {
        tp__mutex_unlock(&m->mu);
        return TP_EINVAL;
    }
    char *old = m->entries[i].name;
    memmove(&m->entries[i], &m->entries[i + 1], (m->n - i - 1) * sizeof m->entries[0]);
    m->n--;
    tp__mutex_unlock(&m->mu);
    tp__free(old);
    return TP_OK;
}

/* The index of f in m's fleets, or m->nfleets. m->mu held. */
static size_t find_fleet_locked(const tp_metrics *m, const tp_fleet *f)
{
    size_t i = 0;
    while (i < m->nfleets && m->fleets[i] != f)
        i++;
    return i;
}

tp_err tp_metrics_register_fleet(tp_metrics *m, tp_fleet *f, tp_errinfo *err)
{
    if (m == NULL || f == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "tp_metrics_register_fleet: registry and fleet are required");
    tp__mutex_lock(&m->mu);
    /* A fleet is its own identity (no name of ours): twice would be two equal series. */
    if (find_fleet_locked(m, f) < m->nfleets) {
        tp__mutex_unlock(&m->mu);
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "tp_metrics_register_fleet: the fleet \"%s\" is already registered",
                              tp_fleet_name(f));
    }
    if (m->nfleets == m->fleets_cap) {
        size_t cap = m->fleets_cap > 0 ? 2 * m->fleets_cap : 2;
        tp_fleet **fl = tp__realloc(m->fleets, cap * sizeof *fl);
        if (fl == NULL) {
            tp__mutex_unlock(&m->mu);
            return tp_errinfo_set(err, TP_ENOMEM, 0, "growing the metrics registry's fleets");
        }
        m->fleets = fl;
        m->fleets_cap = cap;
    }
    m->fleets[m->nfleets++] = f;
    tp__mutex_unlock(&m->mu);
    return TP_OK;
}

tp_err tp_metrics_unregister_fleet(tp_metrics *m, tp_fleet *f)
{
    if (m == NULL || f == NULL)
        return TP_EINVAL;
    tp__mutex_lock(&m->mu);
    size_t i = find_fleet_locked(m, f);
    if (i == m->nfleets) {
        tp__mutex_unlock(&m->mu);
        return TP_EINVAL;
    }
    memmove(&m->fleets[i], &m->fleets[i + 1], (m->nfleets - i - 1) * sizeof m->fleets[0]);
    m->nfleets--;
    tp__mutex_unlock(&m->mu);
    return TP_OK;
}

/* Renders m into b (which the caller frees). */
static tp_err render(tp_metrics *m, tp_metrics_format fmt, tp__buf *b)
{
    tp__msnap s;
    tp__mutex_lock(&m->mu);
    tp_err rc = tp__msnap_take_locked(m, &s);
    if (rc == TP_OK) {
        if (fmt == TP_METRICS_JSON)
            tp__mrender_json(b, &s);
        else
            tp__mrender_prom(b, &s);
        tp__msnap_free(&s);
    }
    tp__mutex_unlock(&m->mu);
    if (rc == TP_OK)
        tp__buf_put(b, "", 0); /* an empty text still gets its NUL */
    return rc != TP_OK || b->oom ? TP_ENOMEM : TP_OK;
}

static bool format_ok(tp_metrics_format fmt)
{
    return fmt == TP_METRICS_PROMETHEUS || fmt == TP_METRICS_JSON;
}

tp_err tp_metrics_render(tp_metrics *m, tp_metrics_format fmt, char **out, size_t *len)
{
    if (out != NULL)
        *out = NULL;
    if (len != NULL)
        *len = 0;
    if (m == NULL || out == NULL || !format_ok(fmt))
        return TP_EINVAL;
    tp__buf b = {0};
    tp_err rc = render(m, fmt, &b);
    if (rc != TP_OK) {
        tp__buf_free(&b);
        return rc;
    }
    *out = b.data;
    if (len != NULL)
        *len = b.len;
    return TP_OK;
}

tp_err tp_metrics_render_buf(tp_metrics *m, tp_metrics_format fmt, char *buf, size_t cap,
                             size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (m == NULL || len == NULL || (buf == NULL && cap > 0) || !format_ok(fmt))
        return TP_EINVAL;
    if (cap > 0)
        buf[0] = '\0';
    tp__buf b = {0};
    tp_err rc = render(m, fmt, &b);
    if (rc == TP_OK) {
        *len = b.len;
        if (b.len < cap)
            memcpy(buf, b.data, b.len + 1);
        else
            rc = TP_ETOOBIG;
    }
    tp__buf_free(&b);
    return rc;
}
