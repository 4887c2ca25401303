/* h2_bad.h: an HTTP/2 server that misbehaves on purpose, in a thread of the test, built
 * on nghttp2's server API (or raw frames where nghttp2 would refuse to misbehave); what
 * h2_bad.c defines. It listens on 127.0.0.1 (cleartext, prior knowledge) and serves one
 * connection at a time. Every request it answers gets 200 with "ok <path>" as the body.
 * The server thread never calls cmocka assertions. */
#ifndef TP_TESTS_H2_BAD_H
#define TP_TESTS_H2_BAD_H

#include <stdint.h>

typedef enum h2_bad_mode {
    H2B_GOAWAY_LOW,         /* once three requests arrived: answers the first, then GOAWAY
                               (NO_ERROR) with that stream as the last processed; later
                               connections answer every request */
    H2B_REFUSE_SECOND,      /* RST_STREAM(REFUSED_STREAM) on the second request, answers the
                               others */
    H2B_SETTINGS_1_10,      /* SETTINGS_MAX_CONCURRENT_STREAMS 1; once it answered one
                               request, a SETTINGS with 10 */
    H2B_NO_PING_ACK,        /* answers requests, never a PING */
    H2B_STALL_FIRST,        /* the first request gets its header and nothing more; the others
                               are answered */
    H2B_BIG_HEADER,         /* answers with a 10 KiB header field */
    H2B_HUGE_HEADER,        /* answers with a 100 KiB header field (more than HPACK takes) */
    H2B_DATA_ON_ZERO,       /* after the preface: a DATA frame on stream 0 (a connection
                               error), raw */
    H2B_NO_WINDOW,          /* never opens its receive windows: an upload stops after the
                               first 64 KiB; requests without a body are answered */
    H2B_SECOND_LATE,        /* the first request is never answered, the second 300 ms after
                               it arrived, the others at once */
    H2B_SILENT_AFTER_FIRST, /* its first connection answers the first request, then
                               reads and never sends again (no answer, no PING ACK), as
                               a peer gone half-open; later connections answer all */
    H2B_CONTINUATION_FLOOD, /* answers the first request with a HEADERS frame without
                               END_HEADERS and 100 CONTINUATION frames after it, each
                               with one small field (CVE-2024-28182), raw */
    H2B_SPLIT_HEADER,       /* answers the first request's header in two parts: HEADERS
                               (":status 200", no END_HEADERS), then 100 ms later a
                               CONTINUATION with "x-late: yes" and END_HEADERS, then
                               "ok /a" as its body, raw */
} h2_bad_mode;

typedef struct h2_bad h2_bad;

/* h2_bad_start: listens on 127.0.0.1 (*port) and serves in a thread. 0, or -1. */
int h2_bad_start(h2_bad_mode mode, h2_bad **out, uint16_t *port);
/* h2_bad_stop: stops serving (the connection is closed) and frees b. */
void h2_bad_stop(h2_bad *b);
/* h2_bad_answered: requests the server answered (submitted a response to, counted before
 * its first byte is sent). */
int h2_bad_answered(h2_bad *b);
/* h2_bad_pings: PINGs the server received. */
int h2_bad_pings(h2_bad *b);

#endif
