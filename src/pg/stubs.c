/* stubs.c: the PostgreSQL API when the library was built without libpq: every call that
 * could do something fails with TP_ESTATE "built without libpq", so programs link and
 * learn at run time what is missing. */
#ifndef TIDEPOOL_HAVE_LIBPQ
#include <string.h>

#include <tidepool/pg.h>

static tp_err missing(tp_errinfo *err)
{
    return tp_errinfo_set(err, TP_ESTATE, 0, "built without libpq");
}

void tp_pg_options_init(tp_pg_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->version = TP_PG_OPTIONS_VERSION;
    tp_pool_options_init(&o->pool);
    o->learn_idle_timeout = true;
}

tp_err tp_pg_pool_create(const tp_pg_options *o, tp_pg_pool **out, tp_errinfo *err)
{
    (void)o;
    if (out != NULL)
        *out = NULL;
    return missing(err);
}

tp_err tp_pg_pool_create_uri(const char *conninfo, const tp_pool_options *pool, tp_pg_pool **out,
                             tp_errinfo *err)
{
    (void)conninfo;
    (void)pool;
    if (out != NULL)
        *out = NULL;
    return missing(err);
}

tp_err tp_pg_pool_add(tp_pg_pool *pp, const char *conninfo, tp_pg_target **out, tp_errinfo *err)
{
    (void)pp;
    (void)conninfo;
    if (out != NULL)
        *out = NULL;
    return missing(err);
}

const char *tp_pg_target_key(const tp_pg_target *t, size_t *len)
{
    (void)t;
    if (len != NULL)
        *len = 0;
    return "";
}

tp_pool *tp_pg_pool_tp(tp_pg_pool *pp)
{
    (void)pp;
    return NULL;
}

void tp_pg_pool_destroy(tp_pg_pool *pp)
{
    (void)pp;
}

tp_err tp_pg_acquire(tp_pg_pool *pp, const tp_pg_target *target, int64_t timeout,
                     unsigned flags, tp_conn **lease, tp_errinfo *err)
{
    (void)pp;
    (void)target;
    (void)timeout;
    (void)flags;
    if (lease != NULL)
        *lease = NULL;
    return missing(err);
}

struct pg_conn *tp_pg_conn_get(const tp_conn *lease)
{
    (void)lease;
    return NULL;
}

void tp_pg_mark_dirty(tp_conn *lease)
{
    (void)lease;
}

tp_err tp_pg_query_simple(tp_conn *lease, const char *sql, tp_errinfo *err)
{
    (void)lease;
    (void)sql;
    return missing(err);
}

void tp_pg_release(tp_conn *lease, unsigned flags)
{
    tp_conn_release(lease, flags);
}

tp_err tp_pg_exec(tp_pg_pool *pp, const tp_pg_target *target, const char *sql,
                  struct pg_result **result, tp_errinfo *err)
{
    (void)pp;
    (void)target;
    (void)sql;
    if (result != NULL)
        *result = NULL;
    return missing(err);
}

const char *tp_pg_result_value(const struct pg_result *r, int row, int col)
{
    (void)r, (void)row, (void)col;
    return NULL;
}

void tp_pg_result_free(struct pg_result *r)
{
    (void)r;
}

char *tp_pg_sqlstate(int backend_code, char out[6])
{
    (void)backend_code;
    if (out != NULL)
        out[0] = '\0';
    return out;
}

int64_t tp_pg_fleet_backends(void *conninfo, const char *instance)
{
    (void)conninfo;
    (void)instance;
    return -1;
}
#else
typedef int tp__pg_stubs_unused;
#endif
