/* engine_timer.c: the event engine's timers: each started request's timer sits in the
 * engine's heap (base/timer.h) at the nearer of its deadlines (the whole request's, or
 * its phase's: connect, TLS handshake, response header). The loop fires what is due
 * (engine.c). */
#include "engine.h"

void tp__eng_timer_clear(tp_http_engine *e, eng_req *rq)
{
    tp__timers_cancel(&e->timers, &rq->timer);
}

void tp__eng_timer_set(tp_http_engine *e, eng_req *rq)
{
    int64_t due = tp__eng_due(rq);
    if (due == TP_DURATION_INFINITE) {
        tp__timers_cancel(&e->timers, &rq->timer);
        return;
    }
    /* Out of memory leaves it without a timer: the pool's acquire timeout still bounds
     * the wait, and a later phase tries again. */
    (void)tp__timers_set(&e->timers, &rq->timer, due);
}
