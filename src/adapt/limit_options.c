/* limit_options.c: tp_adapt_options defaults and validation. The defaults follow the
 * recommended controller of docs/adaptive.md (Envoy's gradient controller parameters,
 * Netflix's back-off and app-limited guard); each check names the field it rejects. */
#include <math.h>
#include <stddef.h>

#include <tidepool/adapt.h>

#define BAD(...) (tp_errinfo_set(err, TP_EINVAL, 0, __VA_ARGS__))

void tp_adapt_options_init(tp_adapt_options *o)
{
    if (o == NULL)
        return;
    *o = (tp_adapt_options){0};
    o->min_limit = 3;
    o->max_limit = 1000;
    o->initial_limit = 20;
    o->port_budget = TP_UNLIMITED;
    o->tolerance = 0.25;
    o->gradient_min = 0.5;
    o->gradient_max = 2.0;
    o->percentile = 0.5;
    o->smoothing = 0.5;
    o->drop_backoff = 0.9;
    o->app_limited_ratio = 0.5;
    o->window_min = 100 * TP_NSEC_PER_MSEC;
    o->window_max = TP_NSEC_PER_SEC;
    o->min_window_samples = 10;
    o->probe_interval = 60 * TP_NSEC_PER_SEC;
    o->probe_jitter = 0.15;
    o->probe_min_concurrency = 3;
    o->probe_fraction = 0.25;
    o->probe_samples = 50;
    o->probe_timeout = 5 * TP_NSEC_PER_SEC;
    o->floor_windows = 5;
}

/* in_range: lo <= v <= hi and v finite; written positively so that NaN fails. */
static int in_range(double v, double lo, double hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

tp_err tp_adapt_options_validate(const tp_adapt_options *o, tp_errinfo *err)
{
    /* Limits beyond 2^31 would not fit a pool's counters and make sqrt(gL) meaningless
     * as headroom; a million is far above any per-destination port range. */
    const int64_t big = INT64_C(1) << 31;
    if (o == NULL)
        return BAD("options: NULL");
    if (!(o->min_limit >= 1 && o->min_limit < big))
        return BAD("min_limit: %lld; want 1 or more", (long long)o->min_limit);
    if (!(o->max_limit >= o->min_limit && o->max_limit < big))
        return BAD("max_limit: %lld; want >= min_limit (%lld) and < 2^31", (long long)o->max_limit,
                   (long long)o->min_limit);
    if (!(o->initial_limit >= o->min_limit && o->initial_limit <= o->max_limit))
        return BAD("initial_limit: %lld; want within [min_limit, max_limit] = [%lld, %lld]",
                   (long long)o->initial_limit, (long long)o->min_limit, (long long)o->max_limit);
    if (!(o->port_budget >= 1))
        return BAD("port_budget: %lld; want 1 or more, or TP_UNLIMITED", (long long)o->port_budget);
    if (!in_range(o->tolerance, 0, 10))
        return BAD("tolerance: %g; want a fraction in [0, 10] such as 0.25", o->tolerance);
    if (!in_range(o->gradient_min, 0.01, 1))
        return BAD("gradient_min: %g; want in [0.01, 1]", o->gradient_min);
    if (!in_range(o->gradient_max, 1, 100))
        return BAD("gradient_max: %g; want in [1, 100]", o->gradient_max);
    if (!(o->percentile > 0 && o->percentile < 1))
        return BAD("percentile: %g; want a quantile in (0, 1) such as 0.5", o->percentile);
    if (!(o->smoothing > 0 && o->smoothing <= 1))
        return BAD("smoothing: %g; want in (0, 1] (1 = no smoothing)", o->smoothing);
    if (!(o->drop_backoff > 0 && o->drop_backoff < 1))
        return BAD("drop_backoff: %g; want in (0, 1) such as 0.9", o->drop_backoff);
    if (!in_range(o->app_limited_ratio, 0, 1))
        return BAD("app_limited_ratio: %g; want in [0, 1]", o->app_limited_ratio);
    if (!(o->window_min > 0))
        return BAD("window_min: %lld ns; want > 0", (long long)o->window_min);
    if (!(o->window_max >= o->window_min && o->window_max != TP_DURATION_INFINITE))
        return BAD("window_max: %lld ns; want finite and >= window_min (%lld ns)",
                   (long long)o->window_max, (long long)o->window_min);
    if (!(o->min_window_samples >= 1 && o->min_window_samples <= UINT32_MAX))
        return BAD("min_window_samples: %lld; want 1 or more", (long long)o->min_window_samples);
    if (!(o->probe_interval > 0))
        return BAD("probe_interval: %lld ns; want > 0 or TP_DURATION_INFINITE",
                   (long long)o->probe_interval);
    if (!(o->probe_jitter >= 0 && o->probe_jitter < 1))
        return BAD("probe_jitter: %g; want a fraction in [0, 1)", o->probe_jitter);
    if (!(o->probe_min_concurrency >= 1))
        return BAD("probe_min_concurrency: %lld; want 1 or more", (long long)o->probe_min_concurrency);
    if (!(o->probe_fraction > 0 && o->probe_fraction <= 1))
        return BAD("probe_fraction: %g; want in (0, 1]", o->probe_fraction);
    if (!(o->probe_samples >= o->min_window_samples && o->probe_samples <= UINT32_MAX))
        return BAD("probe_samples: %lld; want >= min_window_samples (%lld)",
                   (long long)o->probe_samples, (long long)o->min_window_samples);
    if (!(o->probe_timeout > 0))
        return BAD("probe_timeout: %lld ns; want > 0", (long long)o->probe_timeout);
    if (!(o->floor_windows >= 0 && o->floor_windows <= UINT32_MAX))
        return BAD("floor_windows: %lld; want 0 (off) or more", (long long)o->floor_windows);
    return TP_OK;
}
