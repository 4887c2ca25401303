/* stub.c: the fleet API when tidepool is built without hiredis: create and status fail
 * with TP_ESTATE "built without hiredis", so programs link and say so clearly. */
#ifndef TIDEPOOL_HAVE_HIREDIS

#include <string.h>

#include "tidepool/fleet.h"

static tp_err absent(tp_errinfo *err)
{
    return tp_errinfo_set(err, TP_ESTATE, 0, "built without hiredis");
}

tp_err tp_fleet_create(const tp_fleet_options *o, tp_fleet **out, tp_errinfo *err)
{
    (void)o;
    if (out != NULL)
        *out = NULL;
    return absent(err);
}

const tp_permit_hook *tp_fleet_hook(tp_fleet *f)
{
    (void)f;
    return NULL;
}

tp_err tp_fleet_attach(tp_fleet *f, tp_pool *p)
{
    (void)f;
    (void)p;
    return TP_EINVAL;
}

void tp_fleet_destroy(tp_fleet *f)
{
    (void)f;
}

void tp_fleet_stats_get(tp_fleet *f, tp_fleet_stats *out)
{
    (void)f;
    memset(out, 0, sizeof *out);
}

const char *tp_fleet_name(const tp_fleet *f)
{
    (void)f;
    return "";
}

const char *tp_fleet_instance(const tp_fleet *f)
{
    (void)f;
    return "";
}

tp_err tp_fleet_status(const char *redis_url, const char *name, int64_t *cap, tp_fleet_member *out,
                       size_t max, size_t *n, tp_errinfo *err)
{
    (void)redis_url;
    (void)name;
    (void)out;
    (void)max;
    if (cap != NULL)
        *cap = 0;
    if (n != NULL)
        *n = 0;
    return absent(err);
}

#endif
