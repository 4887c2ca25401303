/* tests/support/chaos_rig.h: the fault proxy (tidepool/chaos.h) as the fault suite's tests
 * use it: in front of 127.0.0.1:port with a fixed seed, faults set and cleared with the
 * test failing on an error, and a wait for the proxy to have closed its side of every
 * connection. cmocka asserts: call from the test's thread. */
#ifndef TP_TEST_CHAOS_RIG_H
#define TP_TEST_CHAOS_RIG_H

#include <stdint.h>

#include <tidepool/chaos.h>

/* chaos_rig_start: a proxy to 127.0.0.1:port, no fault, the given seed. */
tp_chaos *chaos_rig_start(uint16_t port, uint64_t seed);
/* chaos_rig_set: tp_chaos_set_fault(), the test fails on an error. */
void chaos_rig_set(tp_chaos *px, const tp_chaos_fault *f);
/* chaos_rig_clear: no fault any more. */
void chaos_rig_clear(tp_chaos *px);
/* chaos_rig_wait_open: waits (up to 5 s) until the proxy holds want connections; the
 * test fails if it does not. */
void chaos_rig_wait_open(tp_chaos *px, uint64_t want);

#endif
