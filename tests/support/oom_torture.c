/* tests/support/oom_torture.c: see oom_torture.h. */
#include "support/oom_torture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include <cmocka.h>

#include "base/base.h"
#include "support/test_util.h"

/* The library may still be giving blocks back on its own threads (a worker finishing
 * an abandoned lookup, a release on an exporter thread): wait a little for them. */
static int64_t live_settled(int64_t want)
{
    int64_t live = tp__alloc_live();
    for (int i = 0; i < 200 && live != want; i++) {
        tu_sleep_ms(5);
        live = tp__alloc_live();
    }
    return live;
}

void oom_torture(const char *name, oom_scenario_fn fn, void *ud, const tp_err *allowed, size_t n,
                 oom_report *out)
{
    *out = (oom_report){0};
    /* A first run sets up whatever the process keeps (OpenSSL's state, the workers). */
    tp__alloc_torture(0);
    tp_err rc = fn(ud);
    if (rc != TP_OK)
        fail_msg("%s: the clean run failed: %s", name, tp_err_name(rc));
    int64_t base = live_settled(tp__alloc_live());
    tp__alloc_torture(0);
    rc = fn(ud);
    out->points = tp__alloc_count();
    if (rc != TP_OK)
        fail_msg("%s: the counting run failed: %s", name, tp_err_name(rc));
    assert_true(out->points > 0);
    for (int64_t i = 1; i <= out->points; i++) {
        tp__alloc_torture(i);
        rc = fn(ud);
        tp__alloc_torture(0);
        bool ok = rc == TP_OK || rc == TP_ENOMEM;
        for (size_t k = 0; k < n && !ok; k++)
            ok = rc == allowed[k];
        if (!ok)
            fail_msg("%s: allocation %lld of %lld failed: %s", name, (long long)i,
                     (long long)out->points, tp_err_name(rc));
        out->enomem += rc == TP_ENOMEM;
        out->absorbed += rc == TP_OK;
        out->other += rc != TP_OK && rc != TP_ENOMEM;
        int64_t live = live_settled(base);
        if (live != base)
            fail_msg("%s: allocation %lld failed (%s): %lld blocks not given back", name,
                     (long long)i, tp_err_name(rc), (long long)(live - base));
        rc = fn(ud);
        if (rc != TP_OK)
            fail_msg("%s: the clean run after failing allocation %lld failed: %s", name,
                     (long long)i, tp_err_name(rc));
    }
    print_message("%s: %lld failure points: %lld TP_ENOMEM, %lld absorbed, %lld other\n", name,
                  (long long)out->points, (long long)out->enomem, (long long)out->absorbed,
                  (long long)out->other);
}
