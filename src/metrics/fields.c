/* fields.c: the one table of which tp_stats counters and histograms are exported, under
 * which Prometheus and JSON names, with which help text. Both renderers and the folding
 * of keys into "other" walk it, so a field added here appears everywhere at once. */
#include <stddef.h>

#include "internal.h"

#define F(field, prom, json, help)                                                                 \
    {                                                                                              \
        offsetof(tp_stats, field), prom, json, help, false                                         \
    }
#define F_SPARSE(field, prom, json, help)                                                          \
    {                                                                                              \
        offsetof(tp_stats, field), prom, json, help, true                                          \
    }

const tp__mfield tp__mcounters[] = {
    F(acquires, "tidepool_acquires_total", "acquires", "Leases granted."),
    F(reuses, "tidepool_reuses_total", "reuses",
      "Leases served by an idle connection rather than a new one."),
    F(waits, "tidepool_waits_total", "waits", "Acquires that had to queue for a connection."),
    F(opens, "tidepool_opens_total", "opens", "Connections opened."),
    F(open_failures, "tidepool_open_failures_total", "open_failures",
      "Connection opens that failed."),
    F(timeouts, "tidepool_acquire_timeouts_total", "acquire_timeouts",
      "Acquires that timed out waiting for a connection."),
    F(checks_failed, "tidepool_checks_failed_total", "checks_failed",
      "Idle connections that failed their check before reuse."),
    F(prewarms, "tidepool_prewarms_total", "prewarms",
      "Opens started ahead of need because acquires queued (prewarm_waiters)."),
    F(permit_waits, "tidepool_permit_waits_total", "permit_waits",
      "Opens held back because a shared budget (the permit hook) had no permit yet."),
    F(permit_refusals, "tidepool_permit_refusals_total", "permit_refusals",
      "Opens a shared budget (the permit hook) refused."),
};
const size_t tp__mcounters_n = sizeof tp__mcounters / sizeof tp__mcounters[0];

const tp__mfield tp__mhists[] = {
    F(acquire_wait, "tidepool_acquire_wait_seconds", "acquire_wait",
      "Time from an acquire call to its lease (0 when it did not queue)."),
    F(open_time, "tidepool_open_seconds", "open", "Duration of successful connection opens."),
    F(hold_time, "tidepool_hold_seconds", "hold", "Duration of leases, acquire to release."),
    F(idle_time, "tidepool_idle_before_reuse_seconds", "idle_before_reuse",
      "How long a reused connection had been idle."),
    F_SPARSE(ping_rtt, "tidepool_ping_rtt_seconds", "ping_rtt",
             "Round trips of PINGs on multiplexed (HTTP/2) connections."),
};
const size_t tp__mhists_n = sizeof tp__mhists / sizeof tp__mhists[0];

const char *tp__mgoaway_name(int i)
{
    /* RFC 9113 section 7, in code order. */
    static const char *const names[TP_GOAWAY_CODES] = {"NO_ERROR",
                                                       "PROTOCOL_ERROR",
                                                       "INTERNAL_ERROR",
                                                       "FLOW_CONTROL_ERROR",
                                                       "SETTINGS_TIMEOUT",
                                                       "STREAM_CLOSED",
                                                       "FRAME_SIZE_ERROR",
                                                       "REFUSED_STREAM",
                                                       "CANCEL",
                                                       "COMPRESSION_ERROR",
                                                       "CONNECT_ERROR",
                                                       "ENHANCE_YOUR_CALM",
                                                       "INADEQUATE_SECURITY",
                                                       "HTTP_1_1_REQUIRED",
                                                       "other"};
    return i >= 0 && i < TP_GOAWAY_CODES ? names[i] : "other";
}

const char *tp__mbreaker_name(tp_breaker_state s)
{
    switch (s) {
    case TP_BREAKER_OPEN:
        return "open";
    case TP_BREAKER_HALF_OPEN:
        return "half_open";
    default:
        return "closed";
    }
}
