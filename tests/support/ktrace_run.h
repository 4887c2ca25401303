/* tests/support/ktrace_run.h: a kernel trace (tidepool/ktrace.h) for the tests that
 * assert what it saw (tests/test_ktrace*.c): started with room for the host's other
 * traffic, run for a while and stopped with nothing lost, and its rows looked up by
 * destination. Main thread only: the functions use cmocka assertions. */
#ifndef TP_TEST_KTRACE_RUN_H
#define TP_TEST_KTRACE_RUN_H

#include <stdbool.h>

#include <tidepool/ktrace.h>

/* Whether this process can trace here; if not, prints "skipped: " and the reason (no
 * eBPF in the build, no BTF, not root) for the test to exit 77. */
bool kr_can_trace(void);

/* A trace of pid's sockets (0: every process) with a 64 MiB ring: the tests running
 * beside this one add events to other destinations meanwhile, and a lost event would
 * make an exact count short. Fails the test if the trace cannot start. */
tp_ktrace *kr_start(int pid);

/* Polls for ms (loopback's events come at once, but from softirq context), stops the
 * trace and asserts that no event was lost to a full ring; says how many runs the kernel
 * skipped, if any. */
void kr_finish(tp_ktrace *t, int ms);

/* The resets row towards dest in that direction (sent or received) on an outgoing
 * (inbound false) or accepted connection, or NULL. */
const tp_ktrace_reset *kr_find_reset(const tp_ktrace *t, const tp_diag_endpoint *dest, bool sent,
                                     bool inbound);

/* pid's closes of outgoing connections to dest, or NULL. */
const tp_ktrace_closes *kr_find_closes(const tp_ktrace *t, const tp_diag_endpoint *dest, int pid);

/* The finding of kind about dest, or NULL. */
const tp_diag_finding *kr_find_finding(const tp_ktrace *t, const char *kind,
                                       const tp_diag_endpoint *dest);

#endif
