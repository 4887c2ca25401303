/* chaos/chaos.h: what the fault proxy's files define for each other (internal). The
 * proxy (proxy.c) owns one epoll loop on its own thread: the listener, the wake-up
 * eventfd and every link. A link (link.c) is one client connection and its upstream
 * connection, with a direction each way; everything here runs on the loop's thread
 * only, except the counters (atomic) and the pending-fault hand-over (its mutex). */
#ifndef TP_CHAOS_CHAOS_H
#define TP_CHAOS_CHAOS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/base.h"
#include "base/list.h"
#include "tidepool/chaos.h"

/* Data read from one side, waiting to be delivered to the other at `due`. */
typedef struct tp__chunk {
    struct tp__chunk *next;
    int64_t due;
    size_t len, off;
    unsigned char data[];
} tp__chunk;

/* One direction of a link: bytes read from `from`, queued, written to `to`. */
typedef struct tp__dir {
    int from, to;
    unsigned bit;           /* TP_CHAOS_UP or TP_CHAOS_DOWN */
    tp__chunk *head, *tail;
    size_t queued;          /* bytes in the chunks */
    int64_t last_due;       /* the newest chunk's due time: data keeps its order */
    uint64_t forwarded;     /* bytes written to `to` */
    bool eof;               /* `from` sent its FIN */
    int64_t fin_due;        /* when to pass the FIN on (after the data) */
    bool fin_sent;
    bool blocked;           /* the last write met a full send buffer: wait for EPOLLOUT */
    double tokens;          /* bandwidth: bytes that may go now */
    int64_t tokens_at;
} tp__dir;

typedef struct tp__chaos_counters {
    _Atomic uint64_t accepted, open, upstream_failures, bytes_up, bytes_down, bytes_dropped,
        faulted, resets, limits, half_opened, refused, steps;
} tp__chaos_counters;

/* A client connection and its upstream one. */
typedef struct tp__link {
    tp__list node;          /* in the proxy's links */
    struct tp_chaos *proxy;
    int cfd, ufd;           /* client, upstream (-1 once closed) */
    unsigned cev, uev;      /* the epoll events registered for each */
    bool connecting;        /* the upstream connect is in flight */
    int64_t connect_deadline;
    int64_t accepted_at;
    bool faulted;           /* drawn against the probability */
    bool frozen;            /* half-open: nothing more either way, nothing closed */
    bool dead;              /* closed: free after this round */
    tp__dir up, down;
} tp__link;

struct tp_chaos {
    tp_chaos_options o;
    char *listen_host, *upstream_host; /* copies */
    struct sockaddr_storage listen_addr, upstream_addr;
    socklen_t listen_len, upstream_len;
    uint16_t port;
    int epfd, lfd, wakefd;
    unsigned lev;                /* the listener's registered epoll events */
    bool delaying;               /* accept_delay in force on the listener */
    int64_t next_accept;         /* then: when the next connection may be accepted */
    pthread_t thread;
    _Atomic bool stop;
    void *control;               /* the control API's daemon (control.c), or NULL */
    uint16_t control_port;
    uint64_t seed;               /* the generator's seed (given, or from the clock) */
    uint64_t rng;                /* the loop's generator (xorshift64*) */
    tp_chaos_fault fault;        /* in force (loop thread) */
    tp__list links;
    bool new_links;              /* links made since the loop last computed its wait */
    tp__chaos_counters n;
    /* the schedule in force (loop thread) */
    tp_chaos_step *steps;
    size_t nsteps, step_next;    /* the next step to apply */
    int64_t sched_start;
    int64_t step_end;            /* when the running step ends; INT64_MAX: it does not */
    tp_chaos_fault base;         /* the faults in force when the schedule started */
    /* tp_chaos_set_fault and tp_chaos_schedule hand their request to the loop and wait
     * for its answer */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending;                /* a request waits for the loop */
    bool pending_schedule;       /* it is a schedule (next_steps), not a fault (next) */
    tp_chaos_fault next;
    tp_chaos_step *next_steps;
    size_t next_n;
    uint64_t applied;            /* hand-overs the loop finished */
    tp_err apply_rc;
    tp_errinfo apply_err;
};

/* ---- link.c ---------------------------------------------------------------------- */

/* tp__link_new: a link for an accepted client fd: starts the upstream connect, counts
 * it, draws whether it is faulted. NULL (client reset, fd closed) on failure. */
tp__link *tp__link_new(struct tp_chaos *p, int cfd, int64_t now);

/* tp__link_pump: moves what can move now (the upstream connect's outcome, reads, due
 * writes, FINs, faults), then registers the epoll events the link waits for. */
void tp__link_pump(tp__link *l, int64_t now);

/* tp__link_next_due: the earliest time the link must be pumped again without an event
 * (a chunk due, bandwidth tokens, a slow FIN, a reset timer); INT64_MAX if none. */
int64_t tp__link_next_due(const tp__link *l, int64_t now);

/* tp__link_redraw: draws the link against the current probability again. */
void tp__link_redraw(tp__link *l);

/* tp__link_close: closes both sides (reset: RST, else FIN) and marks the link dead. */
void tp__link_close(tp__link *l, bool reset);

/* tp__link_free: frees a dead link (its fds are closed). */
void tp__link_free(tp__link *l);

/* ---- fault_text.c ---------------------------------------------------------------- */

/* tp__chaos_parse_duration: "50ms", "2s", "1.5" (seconds), "10us", "3m" -> ns. */
bool tp__chaos_parse_duration(const char *s, int64_t *out);
/* tp__chaos_parse_bytes: "10KB", "1MiB", "512" -> bytes (K, M, G: powers of 1024). */
bool tp__chaos_parse_bytes(const char *s, int64_t *out);

/* ---- schedule.c (loop thread) ------------------------------------------------------ */

/* tp__chaos_sched_start: the loop takes steps (sorted, owned now) as its schedule from
 * now, freeing the one before. */
void tp__chaos_sched_start(struct tp_chaos *p, tp_chaos_step *steps, size_t n, int64_t now);
/* tp__chaos_sched_tick: applies the steps (and the ends of steps) that are due. */
void tp__chaos_sched_tick(struct tp_chaos *p, int64_t now);
/* tp__chaos_sched_next_due: when the schedule next needs the loop; INT64_MAX if never. */
int64_t tp__chaos_sched_next_due(const struct tp_chaos *p);

/* ---- control.c -------------------------------------------------------------------- */

/* tp__chaos_control_start: serves the control API (the loop runs already). */
tp_err tp__chaos_control_start(struct tp_chaos *p, tp_errinfo *err);
/* tp__chaos_control_stop: stops it (no request runs afterwards); no-op without one. */
void tp__chaos_control_stop(struct tp_chaos *p);

/* ---- proxy.c --------------------------------------------------------------------- */

/* tp__chaos_numeric_addr: a numeric host and a port as a socket address; TP_EINVAL if
 * host is not a numeric address. */
tp_err tp__chaos_numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                              socklen_t *len, tp_errinfo *err);

/* tp__chaos_install: puts f in force (the listener closed or bound again for `refuse`,
 * every link drawn again). TP_EIO if the listener could not be bound again. */
tp_err tp__chaos_install(struct tp_chaos *p, const tp_chaos_fault *f, tp_errinfo *err);
/* tp__chaos_reset_all: resets every open connection (counted as resets). */
void tp__chaos_reset_all(struct tp_chaos *p);

/* tp__chaos_rand: the loop's next 64 random bits. */
uint64_t tp__chaos_rand(struct tp_chaos *p);

/* tp__chaos_watch: sets fd's registered events to ev (0: none) in the loop's epoll;
 * *cur holds what is registered now. */
void tp__chaos_watch(struct tp_chaos *p, int fd, unsigned *cur, unsigned ev, void *tag);

#endif
