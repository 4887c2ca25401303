/* engine.h: the event engine's internal structures (never installed), shared by its
 * files: engine.c (the loop, descriptor table, life), engine_submit.c (submission and
 * cancellation), engine_timer.c (the timer heap), and one request's state machine in
 * engine_req.c (start, dispatch, completion), engine_req_open.c (opening a connection),
 * engine_req_exchange.c (the exchange on a leased connection), engine_req_redirect.c
 * (the next hop) and engine_req_h2.c (a request as a stream of an HTTP/2 connection).
 * blocking.c runs the blocking call on a private engine. */
#ifndef TP_HTTP_ENGINE_H
#define TP_HTTP_ENGINE_H

#include <netdb.h>
#include <unistd.h>

#include "base/list.h"
#include "base/timer.h"
#include "client.h"

typedef enum er_state {
    ER_NEW = 0,    /* submitted, not started by the loop yet */
    ER_ACQUIRING,  /* waiting for the pool (a connection or an open slot) */
    ER_RESOLVING,  /* on an open slot, waiting for a name lookup on a worker */
    ER_CONNECTING, /* non-blocking connect on an open slot */
    ER_TUNNEL,     /* the proxy's CONNECT exchange on an open slot */
    ER_TLS,        /* TLS handshake on an open slot */
    ER_SENDING,    /* writing the request */
    ER_RECEIVING,  /* reading the response */
    ER_H2,         /* a stream on an HTTP/2 connection, until its response is complete */
    ER_DONE        /* completed (callback ran or about to) */
} er_state;

/* What a step of opening, exchanging or redirecting leaves for the dispatcher in
 * engine_req.c. Those steps never call back up: they say what comes next, and the
 * dispatcher (tp__er_settle, run after every event it hands down) does it. So the files
 * call one another in one direction only: engine.c -> engine_req.c -> engine_req_open.c,
 * engine_req_exchange.c, engine_req_redirect.c -> engine_fd.c, engine_timer.c. */
typedef enum er_then {
    ER_THEN_WAIT = 0, /* nothing now: an edge, a timer, a result or a resume comes back */
    ER_THEN_ACQUIRE,  /* ask the pool (again: the retry, a redirect, a refusal it waits
                         through) */
    ER_THEN_EXCHANGE, /* rq->lease is a connection: send on it */
    ER_THEN_FINISH    /* end with then_rc (then_info), the response on TP_OK */
} er_then;

typedef struct eng_req eng_req;

/* An HTTP/2 connection this engine has streams on (engine_req_h2.c): its socket is in
 * our epoll set while it does; every edge steps the session and looks at our streams. */
typedef struct eng_h2c {
    void *conn;   /* tp_conn_get() of its leases: which connection */
    int fd;
    eng_req *reqs; /* our requests in flight on it (h2_next) */
    struct eng_h2c *next; /* in e->h2cs */
    bool dirty;           /* streams submitted this round, not yet sent */
    struct eng_h2c *next_dirty; /* in e->h2_dirty */
} eng_h2c;

/* A name lookup a request started on a worker (net.h's tp__lookup): outstanding from
 * its start until the loop has taken its outcome, even when the request gave up on it
 * (then rq is NULL and the outcome is dropped). */
typedef struct eng_lookup {
    tp_http_engine *e;
    eng_req *rq; /* loop thread; NULL once nobody waits for it */
    tp__lookup *l;
    char host[256]; /* what it looks up, for the cache */
    uint16_t port;
    struct eng_lookup *next_q;      /* in e->lookups once done (e->mu) */
    struct eng_lookup *prev, *next; /* in e->outstanding (loop thread) */
} eng_lookup;

struct eng_req {
    tp_http_engine *e;
    uint64_t id;
    er_state state;
    tp_http_done_fn cb;
    void *ud;

    /* the request (copied at submit) */
    char *method;   /* owned */
    char host[256]; /* the destination */
    uint16_t port;
    bool tls;
    char key[TP__HTTP_KEY_MAX]; /* the pool key of the destination */
    size_t keylen;
    tp__buf head; /* serialised request line and headers */
    char *body;   /* owned copy, or the blocking caller's (body_borrowed) */
    size_t body_len;
    bool body_borrowed; /* body is the blocking caller's: valid until it returns */
    bool handover;      /* TP_HTTP_STREAM (blocking): delivered at the header, the lease
                           and the rest of the body going to the caller's response */
    bool blocking;      /* a blocking call's: nothing can resume a paused source */
    unsigned flags;
    size_t sent; /* bytes of head + body written */
    tp__http_hop *hop; /* with max_redirects: the chain so far (redirect.c); else NULL */
    tp_http_body_source_fn source; /* the body produced while sending, or NULL */
    void *source_ud;
    int64_t source_len;  /* -1: chunked */
    char *piece;         /* the source's current piece, framed; NULL until needed */
    size_t piece_off, piece_len; /* written of it, its length */
    uint64_t source_total; /* bytes the source gave */
    bool source_started, source_done, source_paused;
    bool decode;               /* the request offers our codings (decompress) */
    enum { EXPECT_NONE, EXPECT_AHEAD, EXPECT_WAITING } expect; /* TP_HTTP_EXPECT_CONTINUE:
                                  header not all sent, waiting for the 100 (the phase
                                  deadline is the end of the wait), or no wait (left) */
    tp_http_body_sink_fn sink; /* on_body */
    void *sink_ud;

    /* progress */
    er_then then;        /* what the last step left for the dispatcher */
    tp_err then_rc;      /* ER_THEN_FINISH: how it ends */
    bool then_has_info;  /* then_info says why (else rc's own words) */
    tp_errinfo then_info;
    int attempt;         /* 0, or 1 for the retry on a fresh connection */
    tp_http_response *r; /* parse state, body, info; handed to cb on success */
    tp_conn *lease;      /* a lease, or an open slot while connecting */
    tp__http_conn *hc;   /* the connection being opened (slot) or used */
    eng_lookup *lookup;  /* resolving: the lookup waited for */
    const tp__http_proxy *proxy; /* opening: the proxy dialed, NULL: direct */
    tp__http_tunnel *tunnel;     /* ER_TUNNEL: its CONNECT exchange */
    tp__dial dial;       /* connecting: the dial in progress (net/dial.c) */
    bool dialing;        /* dial holds addresses or attempts */
    bool readable;       /* sending: a readable edge came (edge-triggered: the bytes it
                            announced must be read once sending ends, no edge repeats it) */
    tp_err watch_rc;     /* an attempt's socket epoll refused, if any */
    tp_errinfo watch_info;
    uint64_t ticket;         /* pool ticket while ACQUIRING */
    bool cancel;             /* cancel requested (guarded by e->mu until seen) */
    int64_t start, deadline; /* whole request */
    int64_t phase_deadline;  /* connect, TLS or header deadline, or = deadline */
    tp_err phase_code;       /* error when phase_deadline (not deadline) fires */
    int64_t phase_start;
    tp__timer timer; /* in the engine's heap at the nearer of its deadlines */

    /* acquire result posted by the pool's callback (guarded by e->mu) */
    bool has_result;
    tp_err acq_status;
    tp_acquired acq_kind; /* with acq_status TP_OK: a lease or an open slot */
    tp_conn *acq_conn;
    tp_errinfo acq_info;

    /* HTTP/2 (engine_req_h2.c): a request of the client's h2 pool */
    bool h2;
    tp__http_h2_req h2q;  /* its fields, cut from head */
    tp__h2_stream *h2_st; /* ER_H2: its stream on lease */
    eng_h2c *h2c;         /* ER_H2: the connection's watcher */
    eng_req *h2_next;     /* in h2c->reqs */
    int h2_attempts;      /* sends the server did not process (GOAWAY, REFUSED_STREAM) */
    int64_t h2_health;    /* ER_H2: when its connection's health wants a step (a silent
                             peer makes no edge): the timer fires then too */

    eng_req *next_q;          /* inbox or results list (e->mu) */
    eng_req *prev_a, *next_a; /* active list (loop thread) */
};

/* tp__er_then_finish: the step ends rq with rc (info: why; NULL: rc's own words). */
static inline void tp__er_then_finish(eng_req *rq, tp_err rc, const tp_errinfo *info)
{
    rq->then = ER_THEN_FINISH;
    rq->then_rc = rc;
    rq->then_has_info = info != NULL && rc != TP_OK; /* a success needs no words */
    if (rq->then_has_info && info != &rq->then_info)
        rq->then_info = *info;
}

/* tp__er_then_acquire / _exchange: the step sends rq back to the pool, or on to the
 * exchange on the connection in rq->lease. */
static inline void tp__er_then_acquire(eng_req *rq)
{
    rq->then = ER_THEN_ACQUIRE;
}
static inline void tp__er_then_exchange(eng_req *rq)
{
    rq->then = ER_THEN_EXCHANGE;
}

/* Which request owns a descriptor, and which connection it was registered for. */
typedef struct fd_slot {
    eng_req *owner;
    eng_h2c *h2c; /* an HTTP/2 connection's socket: events go to its streams */
    uint64_t conn_id; /* the connection whose fd is registered in our epoll; 0: none */
} fd_slot;

/* A cancellation (or a resume) for a request the loop has started (any thread leaves
 * it). */
typedef struct cancel_note {
    uint64_t id;
    bool resume; /* tp_http_engine_resume(), not a cancel */
    struct cancel_note *next;
} cancel_note;

struct tp_http_engine {
    tp_http_client *c;
    int epfd, evfd;
    pthread_t loop_thread;
    bool loop_thread_known;

    tp__mutex mu; /* guards: inbox, results, lookups, woken, next_id, cancels */
    eng_req *inbox, *inbox_tail;
    eng_req *results, *results_tail;
    eng_lookup *lookups, *lookups_tail; /* done, not yet taken by the loop */
    bool woken; /* the eventfd has been written and not yet drained */
    cancel_note *cancels;
    /* The last header-less request submitted, parsed and serialised: a client sending
     * the same request again and again (a poller, a benchmark) skips that work. */
    struct {
        char *method, *url;
        size_t body_len;
        char host[256];
        uint16_t port;
        bool tls;
        char key[TP__HTTP_KEY_MAX];
        size_t keylen;
        tp__buf head;
    } memo;
    uint64_t next_id;
    _Atomic size_t pending; /* submitted and not completed */

    /* loop thread only */
    eng_req *active;   /* every started, not completed request */
    eng_lookup *outstanding; /* every lookup started and not yet taken */
    tp__timers timers; /* the started requests' timers */
    fd_slot *fds;
    size_t nfds;
    int completed;  /* completions in the current round */
    size_t zombies; /* completed requests kept until a late pool result arrives */
    eng_h2c *h2cs;  /* HTTP/2 connections with our streams on them */
    eng_h2c *h2_dirty; /* those with streams to send: one write each per round */

    /* a blocking call's private engine (blocking.c) */
    tp_http_engine *next_idle; /* in the client's stack of idle ones */
    unsigned fork_gen;         /* tp__fork_generation at create: a child makes its own */
};

/* ---- engine_submit.c: submission ---------------------------------------------------- */

/* How a submission differs from tp_http_engine_submit()'s: a blocking call's. */
typedef struct tp__eng_submit_opts {
    bool borrow_body; /* req->body stays valid until the request completes: not copied */
    bool handover;    /* TP_HTTP_STREAM: complete at the header, lease in the response */
    bool blocking;    /* a body source may not pause */
    bool http1;       /* HTTP/1.1 whatever the route: the blocking call chose it */
} tp__eng_submit_opts;

/* tp__eng_submit: tp_http_engine_submit() with opts (NULL: none). */
tp_err tp__eng_submit(tp_http_engine *e, const tp_http_request *req,
                      const tp__eng_submit_opts *opts, tp_http_done_fn cb, void *ud, uint64_t *id,
                      tp_errinfo *err);
/* tp__eng_abandon: frees an idle engine inherited through fork() without touching its
 * epoll set, which the parent still uses (closing our descriptors only drops ours). */
void tp__eng_abandon(tp_http_engine *e);
/* tp__eng_adopt: the calling thread runs e's loop from now on (a private engine that
 * moves between threads: the wake-up rule needs to know which thread polls). */
void tp__eng_adopt(tp_http_engine *e);

/* ---- engine_fd.c: the descriptor table ------------------------------------------------ */

/* eng_watch: makes rq the owner of fd (registering the connection in epoll if it is
 * not already). TP_ESYS if epoll refuses. */
tp_err tp__eng_watch(tp_http_engine *e, eng_req *rq, int fd, uint64_t conn_id, tp_errinfo *err);
/* eng_unwatch: rq no longer owns fd (the registration stays for reuse unless forget). */
void tp__eng_unwatch(tp_http_engine *e, int fd, bool forget);

/* ---- engine.c: the loop ----------------------------------------------------------- */

/* tp__eng_wake_locked: wakes the loop unless we are on it or it is already woken. Lock
 * held. Inline: every submission calls it (engine_submit.c), and engine.c. */
static inline void tp__eng_wake_locked(tp_http_engine *e)
{
    if (e->woken)
        return;
    if (e->loop_thread_known && pthread_equal(e->loop_thread, pthread_self()))
        return; /* the loop drains the queues before it sleeps */
    e->woken = true;
    uint64_t one = 1;
    ssize_t n = write(e->evfd, &one, sizeof one);
    (void)n; /* EAGAIN means a wake-up is already pending */
}

/* ---- engine_timer.c: the requests' timers (base/timer.h) ------------------------------ */

/* tp__eng_due: when rq's timer fires: the nearer of its deadline and phase deadline,
 * or while dialing the dial's next attempt, or on HTTP/2 its connection's health step,
 * if that comes first. */
static inline int64_t tp__eng_due(const eng_req *rq)
{
    int64_t due = TP__MIN(rq->deadline, rq->phase_deadline);
    if (rq->state == ER_H2)
        due = TP__MIN(due, rq->h2_health);
    return rq->dialing ? TP__MIN(due, tp__dial_due(&rq->dial)) : due;
}

/* eng_timer_set: (re)arms rq's timer at the earlier of its deadlines. */
void tp__eng_timer_set(tp_http_engine *e, eng_req *rq);
/* tp__eng_timer_clear: takes rq's timer out of the heap, if it is in it. */
void tp__eng_timer_clear(tp_http_engine *e, eng_req *rq);

/* ---- engine_req.c: the dispatcher: a request's start, events and completion ---------- */

/* The entries the loop (engine.c) hands a request's events to. Each runs the step for
 * the request's state, then does what the step left (rq->then): acquire, exchange, or
 * finish through the callback. Loop thread. */
/* tp__er_start: a submitted request begins (the pool is asked). */
void tp__er_start(eng_req *rq);
/* tp__er_on_result: the pool's answer to its queued acquire came (on_acquired). */
void tp__er_on_result(eng_req *rq);
/* tp__er_on_events: epoll events on the request's descriptor. */
void tp__er_on_events(eng_req *rq, uint32_t events);
/* tp__er_on_timer: its timer fired. */
void tp__er_on_timer(eng_req *rq, int64_t now);
/* tp__er_cancel: ends it with TP_ECANCELED (cancel or engine destroy). */
void tp__er_cancel(eng_req *rq);
/* tp__er_resume: a paused body source or sink goes on. */
void tp__er_resume(eng_req *rq);
/* tp__er_on_lookup: a finished lookup taken off the queue (for its request, if one still
 * waits for it). */
void tp__er_on_lookup(tp_http_engine *e, eng_lookup *el);
/* tp__er_free: frees a request that has completed or never started. */
void tp__er_free(eng_req *rq);

/* ---- engine_req_redirect.c: the next hop of a redirect ------------------------------ */

/* tp__er_redirect: rq completed; if its response is a redirect to follow, readies rq for
 * the next hop (ER_THEN_ACQUIRE, or ER_THEN_FINISH with the hop's error) and returns
 * true; false: deliver the response. */
bool tp__er_redirect(eng_req *rq);
/* tp__er_hop_init: at submit, with max_redirects: keeps what later hops need. */
tp_err tp__er_hop_init(eng_req *rq, const tp_http_request *req, const char *method,
                       tp_errinfo *err);

/* ---- engine_req_open.c: opening a connection on an open slot -------------------------- */

/* tp__er_got_slot: the pool gave rq an open slot: resolve (a name on a worker, so the
 * loop never waits for DNS; a literal at once) and connect. */
void tp__er_got_slot(eng_req *rq, tp_conn *slot);
/* tp__er_lookup_taken: the loop takes a finished lookup (caches its outcome); the request
 * it is for, if one still waits, dials the addresses or fails: that request is returned
 * for the dispatcher, else NULL. */
eng_req *tp__er_lookup_taken(tp_http_engine *e, eng_lookup *el);
/* tp__eng_lookup_drop: rq no longer waits for its lookup (it ends, or was canceled). */
void tp__eng_lookup_drop(eng_req *rq);
/* tp__er_tunnel_step: advances the CONNECT exchange; open: TLS begins. */
void tp__er_tunnel_step(eng_req *rq);
/* tp__er_dial_step: advances the dial (an attempt's socket is ready, or the next one is
 * due); connected: TLS or the proxy's tunnel begins; over: tp__er_open_failed. */
void tp__er_dial_step(eng_req *rq);
/* tp__er_tls_step: advances the TLS handshake; done: the connection goes to the pool and
 * rq on to the exchange (ER_THEN_EXCHANGE). */
void tp__er_tls_step(eng_req *rq);
/* tp__er_open_failed: closes what was opened, fails the slot; rq queues again when the
 * pool waits through the failure (ER_THEN_ACQUIRE), else ends with rc. */
void tp__er_open_failed(eng_req *rq, tp_err rc, const tp_errinfo *info);

/* ---- engine_req_exchange.c: the exchange on a leased connection ------------------------ */

/* tp__er_new_response: rq->r, fresh for an attempt or a hop; false: out of memory. */
bool tp__er_new_response(eng_req *rq);
/* tp__er_got_conn: rq leases a connection: register it and send. */
void tp__er_got_conn(eng_req *rq, tp_conn *lease);
/* tp__er_send_request: writes what is left of the request; then waits for the response. */
void tp__er_send_request(eng_req *rq);
/* tp__er_continue_timeout: the wait for a 100 (Continue) ended: the body goes. */
void tp__er_continue_timeout(eng_req *rq);
/* tp__er_receive: reads and parses until the response is complete or the socket is dry. */
void tp__er_receive(eng_req *rq);
/* tp__er_exchange_resume: a paused body source or sink goes on. */
void tp__er_exchange_resume(eng_req *rq);

/* ---- engine_req_h2.c: a request as a stream of an HTTP/2 connection ------------------- */

/* tp__er_h2_prepare: at submit, rq goes over HTTP/2 (the client routes it so): its
 * fields from rq->head. TP_ENOMEM. */
tp_err tp__er_h2_prepare(eng_req *rq, tp_errinfo *err);
/* tp__er_h2_got_lease: a stream of an HTTP/2 connection: send rq on it and watch the
 * connection; what comes next is left in rq->then. */
void tp__er_h2_got_lease(eng_req *rq, tp_conn *lease);
/* tp__er_h2_fall_back: the h2 pool refused rq with rc: true when the server turned
 * out to speak HTTP/1.1 (rq then goes there: ER_THEN_ACQUIRE). */
bool tp__er_h2_fall_back(eng_req *rq, tp_err rc, const tp_errinfo *info);
/* tp__er_h2_abort: rq in ER_H2 gives up its stream (reset) and lease. */
void tp__er_h2_abort(eng_req *rq);
/* tp__er_h2_on_events: an edge on an HTTP/2 connection's socket: steps it, and settles
 * each of our requests on it whose stream moved. Loop thread. */
void tp__er_h2_on_events(tp_http_engine *e, eng_h2c *h2c);
/* tp__er_h2_on_health: rq's timer fired for its connection's health (before its own
 * deadlines): steps the connection (a PING sent, or one overdue kills it), looks at rq,
 * and re-arms the timer. The caller settles rq. */
void tp__er_h2_on_health(eng_req *rq);
/* tp__er_h2_flush: sends what this round's submissions queued, one step per connection
 * (before the loop sleeps). Loop thread. */
void tp__er_h2_flush(tp_http_engine *e);
/* tp__er_settle: runs what rq's steps left (engine_req.c's dispatcher). */
void tp__er_settle(eng_req *rq);

#endif
