/* h2_steps.h: what the HTTP/2 session tests share, defined in h2_steps.c: submitting a
 * GET and stepping a session until something holds (cmocka assertions: test threads
 * only). */
#ifndef TP_TESTS_H2_STEPS_H
#define TP_TESTS_H2_STEPS_H

#include <stdint.h>

#include "h2/h2.h"

/* h2t_get: submits GET path on h (http, 127.0.0.1); fails the test if it cannot. */
tp__h2_stream *h2t_get(tp__h2 *h, const char *path);

/* h2t_step: one step of h; fails the test if it fails (what names the wait). Returns
 * what to wait for. */
int h2t_step(tp__h2 *h, const char *what);

/* h2t_wait: waits on h's socket for want until deadline; fails the test at the deadline. */
void h2t_wait(tp__h2 *h, int want, int64_t deadline, const char *what);

/* H2T_STEP_UNTIL(h, cond, ms): steps h until cond holds (checked after every step, so a
 * step that meets it never waits), failing the test after ms. */
#define H2T_STEP_UNTIL(h, cond, ms)                                                                \
    do {                                                                                           \
        int64_t h2t_deadline_ = tp_deadline_after((int64_t)(ms)*TP_NSEC_PER_MSEC);                 \
        for (;;) {                                                                                 \
            int h2t_want_ = h2t_step((h), #cond);                                                  \
            if (cond)                                                                              \
                break;                                                                             \
            h2t_wait((h), h2t_want_, h2t_deadline_, #cond);                                        \
        }                                                                                          \
    } while (0)

#endif
