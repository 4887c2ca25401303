/* tests/support/http_test_server.h: an in-process HTTP/1.1 server on 127.0.0.1 for the
 * misbehaviours a real server (the nginx fixture) will not produce on demand: unsolicited
 * bytes on an idle connection, closes and resets at chosen points, stalls, raw malformed
 * responses. Plus hts_blackhole_open(), a port where connect() never completes.
 *
 * Threads: one accepting, one per connection; counters are atomics that a test reads at
 * any time. Everything the server is given is copied at hts_start(). hts_stop() joins every
 * thread and closes every socket, so a test ends clean under ASan/LSan/TSan.
 *
 * Requests are read completely before a behaviour acts: the header block up to the empty
 * line and a body framed by Content-Length or "Transfer-Encoding: chunked" (trailers
 * included). A request with a header block over 64 KiB, a body over 1 MiB or framing the
 * server cannot parse makes it close the connection (FIN), uncounted. */
#ifndef TP_TEST_HTTP_TEST_SERVER_H
#define TP_TEST_HTTP_TEST_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The 200 body when none is configured (13 bytes, the same as the nginx fixture's). */
#define HTS_DEFAULT_BODY "hello, world\n"
/* HTS_UNSOLICITED's bytes when none are configured. */
#define HTS_DEFAULT_UNSOLICITED "HTTP/1.1 408 Request Timeout\r\n\r\n"
#define HTS_DEFAULT_EARLY                                                                      \
    "HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large"

/* What the server does with a request. "Normal response" below means
 * "HTTP/1.1 200 OK\r\nContent-Length: <n>\r\nContent-Type: text/plain\r\n\r\n<body>" (no
 * body bytes for HEAD), with "Connection: close" added, and the connection closed after
 * it, when the request said "Connection: close" or was HTTP/1.0 without
 * "Connection: keep-alive". */
typedef enum hts_mode {
    /* Normal response, keep-alive. */
    HTS_NORMAL = 0,
    /* Normal response, then, if no new request byte arrives within delay_ms, writes raw
     * (default HTS_DEFAULT_UNSOLICITED) on the idle connection without any request; then
     * closes (FIN) if close_after, else keeps serving the connection. A request that
     * arrives first cancels the unsolicited write. */
    HTS_UNSOLICITED,
    /* Response without any Connection header (so HTTP/1.1 keep-alive is implied), then
     * close (FIN): the client only learns of it when it reuses the connection. */
    HTS_CLOSE_AFTER_RESPONSE,
    /* Normal response; then the connection is closed (FIN) if no new request byte arrives
     * within delay_ms: a server-side keep-alive timeout. */
    HTS_CLOSE_IDLE_AFTER,
    /* "HTTP/1.1 200 OK" with "Content-Length: 100000", 1000 bytes of body ('x'), then a
     * reset (SO_LINGER 0 and close: RST, not FIN). */
    HTS_RESET_MID_BODY,
    /* Writes "HTTP/1.1 200 OK\r\n", stalls delay_ms, then the rest of a normal response. */
    HTS_SLOW_HEADERS,
    /* Never answers: reads and discards whatever comes next (uncounted) until the client
     * closes or hts_stop(). */
    HTS_NO_RESPONSE,
    /* Writes raw (raw_len bytes) verbatim as the response; then closes (FIN) if
     * close_after, else reads the next request from the same connection. */
    HTS_RAW,
    /* Closes (FIN) without writing a byte: "EOF before any response byte". */
    HTS_CLOSE_BEFORE_RESPONSE,
    /* Resets (RST via SO_LINGER 0) without writing a byte. */
    HTS_RESET_BEFORE_RESPONSE,
    /* Answers as soon as the request's header is in, without reading its body: writes
     * raw (default HTS_DEFAULT_EARLY, a 413), stalls delay_ms, then, with close_after,
     * closes with the body unread (the kernel answers it with RST), else reads and
     * discards until the client closes (a lingering close, as nginx does). Only as the
     * server's behaviour (not per request: the body is never framed). */
    HTS_EARLY_RESPONSE,
} hts_mode;

/* One behaviour. Pointers are read during hts_start() only (copied). */
typedef struct hts_behavior {
    hts_mode mode;
    const char *body; /* normal response body; NULL: HTS_DEFAULT_BODY */
    size_t body_len;  /* its length; 0 with a body: strlen(body) */
    int delay_ms;     /* UNSOLICITED: idle time before writing; CLOSE_IDLE_AFTER: idle limit;
                         SLOW_HEADERS: stall after the status line */
    const char *raw;  /* RAW: the response; UNSOLICITED, EARLY_RESPONSE: the bytes
                         (NULL: default) */
    size_t raw_len;   /* its length; 0 with raw: strlen(raw) */
    bool close_after; /* RAW, UNSOLICITED: close after writing raw */
} hts_behavior;

typedef struct hts_options {
    hts_behavior behavior; /* for every request not covered by per_request */
    /* Optional: the server's i-th request (0-based, counted over the whole server in the
     * order the requests were completely read, all connections together) follows
     * per_request[i] when i < n_per_request. */
    const hts_behavior *per_request;
    size_t n_per_request;
} hts_options;

typedef struct hts_server hts_server;

/* Fills *o: HTS_NORMAL with HTS_DEFAULT_BODY for every request. */
void hts_options_init(hts_options *o);

/* Starts a server on 127.0.0.1, port chosen by the kernel (hts_port()). Copies *o.
 * Returns 0 and *out, or -1 with errno set (*out NULL). Thread-safe. */
int hts_start(const hts_options *o, hts_server **out);

/* The port the server listens on. */
uint16_t hts_port(const hts_server *s);

/* Connections accepted so far. Thread-safe, any time before hts_stop(). */
unsigned hts_connections(const hts_server *s);
/* Connections accepted and not yet closed by the server (the server closes its end
 * when the client closes, when a behaviour says so, and at hts_stop()). */
unsigned hts_open_connections(const hts_server *s);
/* Requests completely read so far (counted before the behaviour acts). */
unsigned hts_requests(const hts_server *s);

/* Copies the raw bytes (request line, headers, body exactly as received, chunk framing
 * included) of the last completely read request into buf, NUL-terminated and truncated to
 * cap - 1 bytes. Returns the request's full length (0 before the first request).
 * Thread-safe. */
size_t hts_last_request(hts_server *s, char *buf, size_t cap);

/* Stops the server: closes the listening socket, wakes and joins every thread, closes
 * every connection (FIN, or RST where unread bytes remain), frees everything. NULL is a
 * no-op. Not concurrently with other calls on s. */
void hts_stop(hts_server *s);

/* A 127.0.0.1 port where connect() neither completes nor fails: a listener with backlog
 * 0 whose accept queue is filled by connections of our own and never accepted, so Linux
 * drops every further SYN (the connecting side retransmits for minutes). For connect
 * timeout tests. */
typedef struct hts_blackhole {
    uint16_t port;
    int listen_fd;
    int fds[8]; /* our connections filling the queue */
    int n_fds;
} hts_blackhole;

/* Sets up *bh. Returns 0, or -1 (errno set; EAGAIN when the kernel kept accepting
 * handshakes, i.e. the trick does not work here; the test should then skip). */
int hts_blackhole_open(hts_blackhole *bh);
/* Closes every socket of *bh. */
void hts_blackhole_close(hts_blackhole *bh);

#endif
