/* tests/support/ktrace_run.c: a kernel trace for the tests (see ktrace_run.h). */
#include "support/ktrace_run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/test_util.h"

bool kr_can_trace(void)
{
    tp_errinfo err;
    tp_errinfo_clear(&err);
    if (tp_ktrace_probe(&err) == TP_OK)
        return true;
    printf("skipped: %s\n", err.msg);
    return false;
}

tp_ktrace *kr_start(int pid)
{
    tp_ktrace_options o;
    tp_ktrace_options_init(&o);
    o.pid = pid;
    o.ring_bytes = 64u << 20;
    tp_ktrace *t = NULL;
    tp_errinfo err;
    tp_errinfo_clear(&err);
    if (tp_ktrace_start(&o, &t, &err) != TP_OK)
        fail_msg("tp_ktrace_start: %s", err.msg);
    return t;
}

void kr_finish(tp_ktrace *t, int ms)
{
    int64_t t0 = tu_now_ns();
    tp_errinfo err;
    while (tu_ms_since(t0) < ms)
        assert_int_equal(tp_ktrace_poll(t, 20, &err), TP_OK);
    assert_int_equal(tp_ktrace_stop(t, &err), TP_OK);
    assert_int_equal(tp_ktrace_summary_get(t)->lost, 0);
    /* Runs the kernel skipped may have been anyone's events: said, for a count that comes
     * out short, not failed on. */
    uint64_t missed = tp_ktrace_summary_get(t)->missed;
    if (missed > 0)
        print_message("the kernel skipped the trace's program %llu times\n",
                      (unsigned long long)missed);
}

const tp_ktrace_reset *kr_find_reset(const tp_ktrace *t, const tp_diag_endpoint *dest, bool sent,
                                     bool inbound)
{
    for (size_t i = 0; i < tp_ktrace_reset_count(t); i++) {
        const tp_ktrace_reset *r = tp_ktrace_reset_get(t, i);
        if (r->sent == sent && r->inbound == inbound && tp_diag_endpoint_equal(&r->dest, dest))
            return r;
    }
    return NULL;
}

const tp_ktrace_closes *kr_find_closes(const tp_ktrace *t, const tp_diag_endpoint *dest, int pid)
{
    for (size_t i = 0; i < tp_ktrace_closes_count(t); i++) {
        const tp_ktrace_closes *c = tp_ktrace_closes_get(t, i);
        if (!c->inbound && c->process.pid == pid && tp_diag_endpoint_equal(&c->dest, dest))
            return c;
    }
    return NULL;
}

const tp_diag_finding *kr_find_finding(const tp_ktrace *t, const char *kind,
                                       const tp_diag_endpoint *dest)
{
    for (size_t i = 0; i < tp_ktrace_finding_count(t); i++) {
        const tp_diag_finding *f = tp_ktrace_finding_get(t, i);
        if (strcmp(f->kind, kind) == 0 && f->has_dest && tp_diag_endpoint_equal(&f->dest, dest))
            return f;
    }
    return NULL;
}
