/* tests/support/outage_load.h: load through a pool while a server restarts, and the two
 * figures a restart test asserts: which operations failed, and how long after the server
 * answered again the pool's first operation succeeded.
 *
 * ol_run() starts `workers` threads that call op() back to back for the whole run, and a
 * probe thread that asks the server directly (no pool) every millisecond whether it
 * answers. After before_ms it runs fault() (a restart, on the calling thread), then lets
 * the load go on for after_ms. The probe's first "no" after the fault starts is the
 * outage's start; its next "yes" is the moment the server answers again (an answer that
 * took over 20 ms is not believed: it cannot say when). Recovery is the
 * time from that moment to the earliest success of an operation that started after the
 * outage began (negative when the pool got through before the probe noticed).
 *
 * op and probe run on the harness's threads and must be thread-safe; neither may use
 * cmocka assertions. */
#ifndef TP_TEST_OUTAGE_LOAD_H
#define TP_TEST_OUTAGE_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include <tidepool/tidepool.h>

/* One operation through the pool by worker (0 .. workers-1): TP_OK or its error. */
typedef tp_err (*ol_op_fn)(void *ud, int worker);
/* Does the server answer now? Asked without the pool, quickly (a short timeout). */
typedef bool (*ol_probe_fn)(void *ud);
/* The fault: 0 when it was applied. */
typedef int (*ol_fault_fn)(void *ud);

#define OL_MAX_WORKERS 64

typedef struct ol_result {
    uint64_t ok, failed;       /* operations over the whole run */
    uint64_t by_code[64];      /* failures by -tp_err */
    int fault_status;          /* fault()'s return */
    bool outage_seen;          /* the probe saw the server not answering */
    double outage_ms;          /* from the probe's first "no" to its next "yes" */
    double recovery_ms;        /* see above; meaningful when outage_seen */
    bool recovered;            /* some operation that started in the outage succeeded */
} ol_result;

/* ol_run: runs the load and the fault as described above and fills *out. workers is at
 * most OL_MAX_WORKERS. Main thread (it starts and joins threads). */
void ol_run(int workers, int64_t before_ms, int64_t after_ms, ol_op_fn op, ol_probe_fn probe,
            ol_fault_fn fault, void *ud, ol_result *out);

/* ol_print: one line per figure and failure code, for the test's log. */
void ol_print(const char *what, const ol_result *r);

/* ol_assert_restart: the verdict on a restart under load by `workers` workers, whose
 * pool counted rejects_breaker: the fault applied, at least min_ok successes, at most
 * twice the workers failed (those in flight and one reconnect round), no TP_EBREAKER,
 * and recovery under bound_ms (when the probe saw the outage; must_see: it has to).
 * cmocka assertions: main thread only. */
void ol_assert_restart(const ol_result *r, int workers, uint64_t min_ok, uint64_t rejects_breaker,
                       double bound_ms, bool must_see);

/* ol_probe_tcp_http: true if 127.0.0.1:port answers "GET / HTTP/1.0" with a status line
 * within 100 ms. */
bool ol_probe_tcp_http(uint16_t port);

#endif
