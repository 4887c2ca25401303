/* tests/support/hts_internal.h: what http_test_server.c (threads, sockets, reading) and
 * hts_modes.c (what each mode writes) share. Not for tests: they use
 * http_test_server.h. */
#ifndef TP_TEST_HTS_INTERNAL_H
#define TP_TEST_HTS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "support/hts_parse.h"
#include "support/http_test_server.h"

/* One accepted connection, served by its own thread. */
typedef struct hts_conn {
    hts_server *s;
    int fd;
    pthread_t tid;
    atomic_bool done; /* set by the connection's thread as its very last action */
    struct hts_conn *next;
} hts_conn;

struct hts_server {
    int listen_fd;
    int stop_fd; /* eventfd, readable once hts_stop() began */
    uint16_t port;
    pthread_t accept_tid;
    atomic_uint accepted, open, requests;
    hts_behavior dflt; /* owned copies (body and raw allocated, defaults resolved) */
    hts_behavior *per;
    size_t n_per;
    pthread_mutex_t mu; /* guards conns, last, last_len */
    hts_conn *conns;
    char *last;
    size_t last_len;
};

/* What a connection does after a behaviour acted: read the next request, close (FIN,
 * unless unread bytes remain) or reset (RST). */
enum { HTS__KEEP, HTS__CLOSE, HTS__RESET };

/* Waits for events on fd (fd < 0: none, a pure sleep) for at most timeout_ms (-1: no
 * limit), or until the server stops. Returns 1 ready, 0 timed out, -1 stopping or error. */
int hts__wait_fd(hts_server *s, int fd, short events, int timeout_ms);

/* Sleeps ms milliseconds; -1 (early) when the server stops. */
int hts__stall(hts_server *s, int ms);

/* Writes all of p[0..n) to the non-blocking socket fd. Returns -1 on error or stop. */
int hts__write_all(hts_server *s, int fd, const char *p, size_t n);

/* Carries out behaviour b for the request req just read from c; pending is the number of
 * bytes of further requests already received. *idle_ms receives the idle limit for the
 * next request (-1: none). Returns HTS__KEEP, HTS__CLOSE or HTS__RESET. Runs on c's
 * thread. */
int hts__act(hts_conn *c, const hts_behavior *b, const hts_req *req, size_t pending, int *idle_ms);

#endif
