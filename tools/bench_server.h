/* tools/bench_server.h: the built-in HTTP/1.1 server of `tidepool bench` run without a URL,
 * so that a benchmark (and `make demo`) needs no server set up. Small and fast enough
 * never to be the bottleneck of a client benchmark: one epoll loop per thread, each with
 * its own SO_REUSEPORT listener on 127.0.0.1, keep-alive, pipelining.
 *
 * Every request gets the same answer, "HTTP/1.1 200 OK", "Content-Length: 13",
 * "Content-Type: text/plain" and the body "hello, world\n" (78 bytes in all; no body for
 * HEAD); pipelined requests are answered in order. A request ends at its empty line,
 * plus a Content-Length body, which is read and discarded. "Connection: close" (or
 * HTTP/1.0 without "Connection: keep-alive") gets the same answer with
 * "Connection: close", then the connection is closed. Requests with a chunked body, a
 * malformed Content-Length or a header block over 16 KiB close the connection without
 * an answer.
 *
 * A schedule (bench_server_start_ex) makes it a server of limited, changing capacity, for
 * watching a client's adaptive limit follow it: k workers, each holding a request for a
 * service time before its answer is written; requests beyond k wait in a FIFO queue; the
 * pair (k, service time) changes at set times. A connection has at most one request in
 * the queue or in service: its pipelined requests are taken one after the other, as a
 * server with one thread per connection would.
 *
 * Independent of the library (it only needs libc and pthreads). One server per process;
 * start and stop from one thread, not concurrently. */
#ifndef TP_TOOLS_BENCH_SERVER_H
#define TP_TOOLS_BENCH_SERVER_H

#include <stddef.h>
#include <stdint.h>

/* The response body, and the whole response to a keep-alive GET. */
#define BENCH_SERVER_BODY "hello, world\n"
#define BENCH_SERVER_RESPONSE                                                                      \
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n" BENCH_SERVER_BODY

/* Starts the server with `threads` event loops (1..64) on 127.0.0.1, port chosen by the
 * kernel and stored in *port_out. Returns 0, or a negative errno value: -EINVAL for a bad
 * thread count, -EALREADY when a server is already running, or the error of the failing
 * socket, epoll or thread call (nothing is left running then). */
int bench_server_start(int threads, uint16_t *port_out);

/* Most phases in a schedule. */
#define BENCH_SERVER_MAX_PHASES 64

/* One step of a schedule: from at_ms after the start on, at most `workers` requests are
 * served at once, each for service_us. workers == 0 lifts the limit and the delay (answers
 * go out at once, as without a schedule). */
typedef struct bench_server_phase {
    int64_t at_ms;      /* >= 0, milliseconds after bench_server_start_ex() */
    int workers;        /* >= 0 */
    int64_t service_us; /* >= 0 */
} bench_server_phase;

/* Options of bench_server_start_ex(); fill with bench_server_options_init(). */
typedef struct bench_server_options {
    int threads;        /* event loops, 1..64 (default 1); one loop runs when scheduled */
    int workers;        /* k at the start (default 0: no schedule, answers at once) */
    int64_t service_us; /* service time at the start (default 0) */
    const bench_server_phase *phases; /* changes, at_ms strictly ascending; copied */
    size_t nphases;                   /* 0..BENCH_SERVER_MAX_PHASES (default 0) */
} bench_server_options;

/* Defaults: one thread, no schedule. */
void bench_server_options_init(bench_server_options *o);

/* Starts the server as bench_server_start() does, with a schedule when o->workers > 0 or
 * o->nphases > 0. The capacity is server-wide, so a scheduled server runs a single event
 * loop whatever o->threads says (k / service time requests per second is far below what
 * one loop carries). Phases take effect at their time from the start; a phase at 0 ms
 * overrides o->workers and o->service_us. Returns 0, or -EINVAL (bad threads, negative
 * workers or service time, too many phases, phases not ascending), -EALREADY, or the
 * error of a failing system call (nothing is left running then). */
int bench_server_start_ex(const bench_server_options *o, uint16_t *port_out);

/* Parses a schedule spec "at_ms:workers:service_us[,...]" (e.g. "0:8:2000,5000:4:2000"),
 * at_ms strictly ascending, into out[0..cap) and *n_out. Spaces around numbers are
 * allowed. On error returns -1 and writes a message naming the faulty phase into
 * err[0..errlen) (err may be NULL); out and *n_out are then unspecified. Returns 0 on
 * success. Pure; any thread. */
int bench_server_phase_parse(const char *spec, bench_server_phase *out, size_t cap,
                             size_t *n_out, char *err, size_t errlen);

/* Stops the server: wakes and joins every thread, closes the listeners and every
 * connection. A no-op when no server runs. */
void bench_server_stop(void);

#endif
