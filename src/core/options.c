/* options.c: default pool options and their validation. Every rejection names the
 * field, so a user reading "max_idle_per_key (80) > max_per_key (64)" knows what to fix. */
#include <stdio.h>

#include "pool_internal.h"

void tp_pool_options_init(tp_pool_options *o)
{
    if (o == NULL)
        return;
    *o = (tp_pool_options){0};
    o->version = TP_POOL_OPTIONS_VERSION;
    o->max_total = TP_UNLIMITED;
    o->max_per_key = 64;
    o->max_idle_total = TP_UNLIMITED;
    o->max_idle_per_key = TP_FOLLOW_MAX_PER_KEY; /* closing what it just opened churns */
    o->min_idle_per_key = 0;
    o->max_waiters_per_key = TP_UNLIMITED;
    o->max_keys = TP_UNLIMITED;
    o->acquire_timeout = 30 * TP_NSEC_PER_SEC;
    o->connect_timeout = 10 * TP_NSEC_PER_SEC;
    o->idle_timeout = 30 * TP_NSEC_PER_SEC;
    o->max_lifetime = 30 * 60 * TP_NSEC_PER_SEC;
    o->lifetime_jitter = 0.025;
    /* check() must not block (a zero-timeout poll, a status read), so checking every
     * reuse costs one system call, while a connection the server closed costs a failed
     * request: always check. */
    o->check_after_idle = 0;
    o->max_uses = TP_UNLIMITED;
    o->fair_after = 1 * TP_NSEC_PER_MSEC;
    o->backoff_initial = 10 * TP_NSEC_PER_MSEC;
    o->backoff_max = 5 * TP_NSEC_PER_SEC;
    o->breaker_threshold = 5;
    o->breaker_min_outage = 1 * TP_NSEC_PER_SEC; /* longer than a restart takes */
    o->breaker_cooldown = 1 * TP_NSEC_PER_SEC;
    o->breaker_cooldown_max = 30 * TP_NSEC_PER_SEC;
    o->maintenance_thread = true;
    o->retire_unhealthy = true;
    o->maintenance_interval = 1 * TP_NSEC_PER_SEC;
    o->prewarm_waiters = TP_UNLIMITED; /* opens more than asked: the caller opts in */
}

#define BAD(...) (tp_errinfo_set(err, TP_EINVAL, 0, __VA_ARGS__))

static tp_err check_nonneg(const char *name, int64_t v, tp_errinfo *err)
{
    if (v < 0)
        return BAD("%s: %lld is negative (use TP_UNLIMITED or TP_DURATION_INFINITE to switch "
                   "a limit off)",
                   name, (long long)v);
    return TP_OK;
}

tp_err tp__options_validate(const tp_pool_options *o, tp_errinfo *err)
{
    if (o == NULL)
        return BAD("options: NULL");
    if (o->version != TP_POOL_OPTIONS_VERSION)
        return BAD("version: %u is not TP_POOL_OPTIONS_VERSION (%u); call "
                   "tp_pool_options_init()",
                   o->version, (unsigned)TP_POOL_OPTIONS_VERSION);
    if (o->connector.open == NULL)
        return BAD("connector.open: required");
    if (o->connector.close == NULL)
        return BAD("connector.close: required");
    if (o->permits != NULL && (o->permits->take == NULL || o->permits->give == NULL))
        return BAD("permits: take and give are both required");

    /* Resolve the sentinel on a copy, so the checks below see the value in force. */
    tp_pool_options resolved = *o;
    if (resolved.max_idle_per_key == TP_FOLLOW_MAX_PER_KEY)
        resolved.max_idle_per_key = resolved.max_per_key;
    o = &resolved;
    const struct {
        const char *name;
        int64_t v;
    } fields[] = {
        {"max_total", o->max_total},
        {"max_per_key", o->max_per_key},
        {"max_idle_total", o->max_idle_total},
        {"max_idle_per_key", o->max_idle_per_key},
        {"min_idle_per_key", o->min_idle_per_key},
        {"max_waiters_per_key", o->max_waiters_per_key},
        {"max_keys", o->max_keys},
        {"acquire_timeout", o->acquire_timeout},
        {"connect_timeout", o->connect_timeout},
        {"idle_timeout", o->idle_timeout},
        {"max_lifetime", o->max_lifetime},
        {"check_after_idle", o->check_after_idle},
        {"max_uses", o->max_uses},
        {"fair_after", o->fair_after},
        {"backoff_initial", o->backoff_initial},
        {"backoff_max", o->backoff_max},
        {"breaker_threshold", o->breaker_threshold},
        {"breaker_min_outage", o->breaker_min_outage},
        {"breaker_cooldown", o->breaker_cooldown},
        {"breaker_cooldown_max", o->breaker_cooldown_max},
        {"maintenance_interval", o->maintenance_interval},
        {"prewarm_waiters", o->prewarm_waiters},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        tp_err rc = check_nonneg(fields[i].name, fields[i].v, err);
        if (rc != TP_OK)
            return rc;
    }
    if (o->max_per_key == 0)
        return BAD("max_per_key: 0 would never allow a connection");
    if (o->max_total == 0)
        return BAD("max_total: 0 would never allow a connection");
    if (o->max_keys == 0)
        return BAD("max_keys: 0 would never allow a key");
    if (o->max_uses == 0)
        return BAD("max_uses: 0 would close every connection before its first use");
    if (o->connect_timeout == 0)
        return BAD("connect_timeout: 0 leaves no time to open a connection");
    if (o->maintenance_interval == 0)
        return BAD("maintenance_interval: 0 would run maintenance in a busy loop");
    if (o->max_idle_per_key > o->max_per_key)
        return BAD("max_idle_per_key (%lld) > max_per_key (%lld)", (long long)o->max_idle_per_key,
                   (long long)o->max_per_key);
    if (o->min_idle_per_key > o->max_idle_per_key)
        return BAD("min_idle_per_key (%lld) > max_idle_per_key (%lld)",
                   (long long)o->min_idle_per_key, (long long)o->max_idle_per_key);
    if (o->min_idle_per_key > 0 && o->max_idle_total != TP_UNLIMITED &&
        o->min_idle_per_key > o->max_idle_total)
        return BAD("min_idle_per_key (%lld) > max_idle_total (%lld)",
                   (long long)o->min_idle_per_key, (long long)o->max_idle_total);
    if (o->max_lifetime != TP_DURATION_INFINITE && o->idle_timeout != TP_DURATION_INFINITE &&
        o->idle_timeout > o->max_lifetime)
        return BAD("idle_timeout (%lld ns) > max_lifetime (%lld ns): the lifetime would always "
                   "fire first",
                   (long long)o->idle_timeout, (long long)o->max_lifetime);
    if (!(o->lifetime_jitter >= 0.0 && o->lifetime_jitter < 1.0))
        return BAD("lifetime_jitter: %g is outside [0, 1)", o->lifetime_jitter);
    if (o->backoff_max < o->backoff_initial)
        return BAD("backoff_max (%lld ns) < backoff_initial (%lld ns)", (long long)o->backoff_max,
                   (long long)o->backoff_initial);
    if (o->breaker_threshold == 0)
        return BAD("breaker_threshold: 0 would open the breaker before any failure (use "
                   "TP_UNLIMITED to disable it)");
    if (o->breaker_cooldown_max < o->breaker_cooldown)
        return BAD("breaker_cooldown_max (%lld ns) < breaker_cooldown (%lld ns)",
                   (long long)o->breaker_cooldown_max, (long long)o->breaker_cooldown);
    if (o->adaptive != NULL) {
        tp_err rc = tp_adapt_options_validate(o->adaptive, err);
        if (rc != TP_OK)
            return rc;
    }
    return TP_OK;
}
