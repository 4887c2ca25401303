/* status.c: tp_fleet_status: a budget as Redis has it, read from outside (its own short
 * connection, no instance created; the STATUS script drops lapsed instances first, as
 * every script does). */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "fleet_internal.h"

static int by_name(const void *a, const void *b)
{
    return strcmp(((const tp_fleet_member *)a)->instance, ((const tp_fleet_member *)b)->instance);
}

tp_err tp_fleet_status(const char *redis_url, const char *name, int64_t *cap, tp_fleet_member *out,
                       size_t max, size_t *n, tp_errinfo *err)
{
    if (redis_url == NULL || name == NULL || cap == NULL || n == NULL || (out == NULL && max > 0))
        return tp_errinfo_set(err, TP_EINVAL, 0, "tp_fleet_status: NULL argument");
    *cap = 0;
    *n = 0;
    if (name[0] == '\0' || strlen(name) > TP_FLEET_NAME_MAX)
        return tp_errinfo_set(err, TP_EINVAL, 0, "name: want 1 to %d bytes", TP_FLEET_NAME_MAX);
    tp__fleet_redis *r = tp__calloc(1, sizeof *r);
    if (r == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating");
    r->timeout = TP_NSEC_PER_SEC;
    tp_err rc = tp__fleet_parse_url(r, redis_url, name, err);
    if (rc == TP_OK)
        rc = tp__fleet_connect(r, err);
    redisReply *rep = NULL;
    if (rc == TP_OK)
        rc = tp__fleet_eval(r, TP__FLEET_STATUS, 0, NULL, &rep, err);
    if (rc == TP_OK && tp__fleet_int(rep, 0) < 0)
        rc = tp_errinfo_set(err, TP_ESTATE, 0, "no budget \"%s\" on Redis at %s:%d", name, r->host,
                            r->port);
    if (rc == TP_OK) {
        *cap = tp__fleet_int(rep, 0);
        size_t total = (size_t)tp__fleet_int(rep, 1), k = 2;
        for (size_t i = 0; i < total && k + 5 < rep->elements; i++, k += 6) {
            if (i < max) {
                tp_fleet_member *m = &out[i];
                memset(m, 0, sizeof *m);
                const redisReply *s = rep->element[k];
                if (s->type == REDIS_REPLY_STRING)
                    memcpy(m->instance, s->str,
                           s->len < TP_FLEET_INSTANCE_MAX ? s->len : TP_FLEET_INSTANCE_MAX);
                m->held = tp__fleet_int(rep, k + 1);
                m->share = tp__fleet_int(rep, k + 2);
                m->demand = tp__fleet_int(rep, k + 3);
                int64_t lease = tp__fleet_int(rep, k + 4), age = tp__fleet_int(rep, k + 5);
                m->lease_ns = lease < 0 ? -1 : lease * TP_NSEC_PER_MSEC;
                m->age_ns = age < 0 ? -1 : age * TP_NSEC_PER_MSEC;
            }
            (*n)++;
        }
        qsort(out, *n < max ? *n : max, sizeof *out, by_name);
    }
    if (rep != NULL)
        freeReplyObject(rep);
    tp__fleet_disconnect(r);
    tp__free(r);
    return rc;
}

#endif
