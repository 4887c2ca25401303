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
 * Independent of the library (it only needs libc and pthreads). One server per process;
 * start and stop from one thread, not concurrently. */
#ifndef TP_TOOLS_BENCH_SERVER_H
#define TP_TOOLS_BENCH_SERVER_H

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

/* Stops the server: wakes and joins every thread, closes the listeners and every
 * connection. A no-op when no server runs. */
void bench_server_stop(void);

#endif
