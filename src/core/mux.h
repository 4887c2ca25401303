/* core/mux.h: what mux.c defines for the other files of the pool: multiplexed
 * connections (many leases, "streams", on one connection). The data structures are in
 * types.h. */
#ifndef TP_CORE_MUX_H
#define TP_CORE_MUX_H

#include "types.h"
#include "after.h"

/* The most streams one connection may be said to carry (HTTP/2 allows 2^31; nobody
 * gets near this, and it keeps the counts in 32 bits). */
#define TP__MUX_MAX_STREAMS (INT64_C(1) << 20)

/* tp__mux_may_locked: may key's connections be multiplexed? (The connector has
 * streams() and the key's last opened connection did not say "one lease".) Such a key
 * dials one connection at a time. */
static inline bool tp__mux_may_locked(const tp_pool *p, const tp__key *k)
{
    return p->o.connector.streams != NULL && k->mux_state != TP__MUX_SINGLE;
}

/* tp__mux_opened_locked: c (just attached to its key) said it carries streams (<= 0:
 * an ordinary connection): records what it is, and what its key is. */
void tp__mux_opened_locked(tp_pool *p, tp_conn *c, int64_t streams);

/* tp__mux_stream_locked: a new stream lease on the multiplexed connection c (owned:
 * claimed from idle, just opened, or in use with room). NULL: no memory. */
tp_conn *tp__mux_stream_locked(tp_pool *p, tp_conn *c);

/* tp__mux_spare_take_locked: a stream on one of key's connections with room, if any;
 * connections past their lifetime or evicted are drained on the way. *nomem is set when
 * there was room but no memory for the stream. */
tp_conn *tp__mux_spare_take_locked(tp_pool *p, tp__key *k, int64_t now, bool *nomem);

/* tp__mux_forget_locked: c (multiplexed) is closing: out of the spare list and the key's
 * stream capacity. */
void tp__mux_forget_locked(tp__key *k, tp_conn *c);

/* tp__mux_release: ends the stream lease s (outside the lock): its tenant's place goes
 * back, and its connection takes another, goes idle when it was the last, or closes when
 * draining (in a forked child, one the parent held is let go). */
void tp__mux_release(tp_pool *p, tp_conn *s, unsigned flags);

/* tp__mux_stream_close_locked: a stream lease s that was never used (its connection,
 * claimed from idle, failed validation) goes, and its connection closes with reason. */
void tp__mux_stream_close_locked(tp_pool *p, tp_conn *s, tp_close_reason reason, tp__after *a);

#endif
