/* tools/bench_server_internal.h: what the files of the built-in benchmark server share:
 * a connection, one event loop's state, and the functions one file calls in another.
 * Internal to bench_server*.c, bench_server__ names; the interface is bench_server.h.
 *
 * The files: bench_server.c (start, stop and the event loop), bench_server_conn.c
 * (reading, writing and immediate answers), bench_server_scheduled.c (answers held back
 * by the capacity schedule), bench_server_request.c (reading a request's header block).
 *
 * Threads: a server loop (sloop: one epoll and its thread) and its connections belong
 * to that loop's thread. */
#ifndef TP_TOOLS_BENCH_SERVER_INTERNAL_H
#define TP_TOOLS_BENCH_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_sched.h"
#include "bench_server.h"

#define IN_SCRATCH (64 * 1024)
#define OUT_SCRATCH (256 * 1024)
#define MAX_HEADER (16 * 1024)

/* The answer to a request that asked for "Connection: close" (BENCH_SERVER_RESPONSE is the
 * keep-alive one). A literal, so that each file's copy has a size known to sizeof. */
#define BENCH_SERVER_RESPONSE_CLOSE                                                                \
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: "                                      \
    "text/plain\r\nConnection: close\r\n\r\n" BENCH_SERVER_BODY

typedef struct bconn {
    int fd;
    bool close_after; /* answered a "close" request: close once the output is written */
    size_t skip;      /* request body bytes still to read and discard */
    char *keep;       /* unanswered input carried over (an incomplete request, or input */
    size_t keep_len;  /* that waits for pending output to drain) */
    char *out;        /* output the socket did not take yet */
    size_t out_len, out_off;
    struct bconn *prev, *next;
    bench_sched_item si; /* scheduled: the request in the queue or in service */
    bool in_sched;       /* si is in the schedule; the connection is not read meanwhile */
    bool gone;           /* hung up while in the schedule: out of epoll, closed when served */
    bool resp_close, resp_head; /* how to answer the request in the schedule */
} bconn;

typedef struct sloop {
    pthread_t tid;
    int listen_fd, ep;
    int timer_fd;       /* scheduled: fires at the schedule's next deadline; else -1 */
    bench_sched *sched; /* NULL without a schedule */
    bconn *conns;       /* every open connection, to close them at stop */
    char in[IN_SCRATCH];
    char out[OUT_SCRATCH];
} sloop;

/* ---- bench_server_request.c ----------------------------------------------------------- */

/* bench_server__scan_headers: reads the header block h[0..n) (request line to the last
 * header's CRLF). Sets *body to the Content-Length (0 without one), *close and *head.
 * Returns -1 for what we do not serve: a chunked body or a malformed Content-Length. */
int bench_server__scan_headers(const char *h, size_t n, size_t *body, bool *close, bool *head);

/* ---- bench_server_conn.c -------------------------------------------------------------- */

/* bench_server__keep: carries data[0..n) over to the connection's next read (c->keep
 * must be empty). -1 when out of memory: the connection must close. */
int bench_server__keep(bconn *c, const char *data, size_t n);

/* bench_server__conn_close: closes c, unlinks it from w->conns and frees it. */
void bench_server__conn_close(sloop *w, bconn *c);
/* bench_server__set_interest: the epoll events (EPOLLIN, EPOLLOUT or 0) c is watched for. */
int bench_server__set_interest(sloop *w, bconn *c, uint32_t events);
/* bench_server__send_or_keep: sends p[0..n); what the socket does not take is copied to
 * c->out. Returns -1 on a socket error or out of memory. */
int bench_server__send_or_keep(bconn *c, const char *p, size_t n);
/* bench_server__settle: after answering, wait for the socket to take pending output,
 * close, or read on. */
void bench_server__settle(sloop *w, bconn *c, bool was_blocked);
/* bench_server__on_readable: c has input (or hung up): reads and answers it. */
void bench_server__on_readable(sloop *w, bconn *c);
/* bench_server__on_writable: c has pending output and the socket may take more. */
void bench_server__on_writable(sloop *w, bconn *c);

/* ---- bench_server_scheduled.c --------------------------------------------------------- */

/* bench_server__now_ns: CLOCK_MONOTONIC in ns, the schedule's time. */
int64_t bench_server__now_ns(void);
/* bench_server__take_one: scheduled mode: takes the first complete request of data[0..len)
 * into the schedule, keeps the rest in c->keep. Returns -1 when c must close now. */
int bench_server__take_one(sloop *w, bconn *c, const char *data, size_t len);
/* bench_server__next_request: scheduled mode, nothing pending on c: takes its next kept
 * request, or reads on. */
void bench_server__next_request(sloop *w, bconn *c);
/* bench_server__run_schedule: scheduled mode: answers what is due, then arms the timer. */
void bench_server__run_schedule(sloop *w);

#endif
