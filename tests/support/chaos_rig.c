/* chaos_rig.c: see chaos_rig.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "chaos_rig.h"

tp_chaos *chaos_rig_start(uint16_t port, uint64_t seed)
{
    tp_chaos_options o;
    tp_chaos_options_init(&o);
    o.upstream_host = "127.0.0.1";
    o.upstream_port = port;
    o.seed = seed;
    tp_chaos *px = NULL;
    tp_errinfo e;
    tp_err rc = tp_chaos_start(&o, &px, &e);
    if (rc != TP_OK)
        fail_msg("tp_chaos_start: %s", e.msg);
    return px;
}

void chaos_rig_set(tp_chaos *px, const tp_chaos_fault *f)
{
    tp_errinfo e;
    tp_err rc = tp_chaos_set_fault(px, f, &e);
    if (rc != TP_OK)
        fail_msg("tp_chaos_set_fault: %s", e.msg);
}

void chaos_rig_clear(tp_chaos *px)
{
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    chaos_rig_set(px, &f);
}

void chaos_rig_wait_open(tp_chaos *px, uint64_t want)
{
    int64_t end = tp_clock_now() + 5 * TP_NSEC_PER_SEC;
    tp_chaos_counters n;
    do {
        tp_chaos_counters_read(px, &n);
        if (n.open == want)
            return;
        usleep(2000);
    } while (tp_clock_now() < end);
    assert_int_equal(n.open, want);
}
