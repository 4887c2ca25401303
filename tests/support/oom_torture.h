/* tests/support/oom_torture.h: out-of-memory torture, as curl's test suite does it. A
 * scenario is run once with no failure, counting the library's allocations (N); then
 * for every i in 1..N it is run with the i-th allocation failing (base/alloc.c's
 * tp__alloc_torture), and again with none. Every failing run must return TP_OK,
 * TP_ENOMEM or one of the scenario's documented graceful outcomes, never crash, and
 * give back every block the library took (tp__alloc_live(); ASan checks the rest); every
 * clean run after it must succeed. Only the library's own allocations are failed
 * (OpenSSL's, libpq's and hiredis's are not: failing those would test them).
 * Main thread only (cmocka assertions). */
#ifndef TP_TEST_OOM_TORTURE_H
#define TP_TEST_OOM_TORTURE_H

#include <stddef.h>
#include <stdint.h>

#include <tidepool/tidepool.h>

/* One run of the scenario: TP_OK, or the error it ended with. */
typedef tp_err (*oom_scenario_fn)(void *ud);

typedef struct oom_report {
    int64_t points;   /* N: allocations of a clean run, each failed in turn */
    int64_t enomem;   /* failing runs that returned TP_ENOMEM */
    int64_t absorbed; /* failing runs that still returned TP_OK */
    int64_t other;    /* failing runs that returned an allowed other outcome */
} oom_report;

/* oom_torture: runs name's scenario as described above; allowed lists the outcomes
 * besides TP_OK and TP_ENOMEM a failing run may have (n of them). Prints the report. */
void oom_torture(const char *name, oom_scenario_fn fn, void *ud, const tp_err *allowed, size_t n,
                 oom_report *out);

#endif
