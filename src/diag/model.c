/* model.c: the ephemeral-port model as pure functions: range size, headroom, close
 * rate, the critical close rate and the time to exhaustion (adaptive.md 3.6). Kept free
 * of I/O so that the tests can check exact values. */
#include "diag_internal.h"

uint32_t tp_diag_port_range_size(uint32_t lo, uint32_t hi)
{
    return hi < lo ? 0 : hi - lo + 1;
}

int64_t tp_diag_port_headroom(uint32_t range, uint32_t used)
{
    return used >= range ? 0 : (int64_t)range - (int64_t)used;
}

double tp_diag_close_rate(uint32_t arrivals, double interval_s)
{
    if (!(interval_s > 0))
        return -1.0;
    return (double)arrivals / interval_s;
}

double tp_diag_critical_rate(uint32_t range, uint32_t open, double tw_hold_s)
{
    if (!(tw_hold_s > 0))
        return -1.0;
    if (open >= range)
        return 0.0;
    return (double)(range - open) / tw_hold_s;
}

double tp_diag_exhaustion_seconds(uint32_t range, uint32_t open, uint32_t timewait,
                                  double close_rate, double tw_hold_s)
{
    uint64_t used = (uint64_t)open + timewait;
    if (used >= range)
        return 0.0;
    if (!(close_rate > 0) || !(tw_hold_s > 0))
        return TP_DIAG_NEVER;
    /* In steady state close_rate * tw_hold_s entries are in TIME_WAIT: if that fits
     * beside the open connections, arrivals and expiries balance and the ports last. */
    if ((double)open + close_rate * tw_hold_s < (double)range)
        return TP_DIAG_NEVER;
    return (double)(range - used) / close_rate;
}
