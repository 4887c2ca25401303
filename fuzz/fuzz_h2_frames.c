/* fuzz_h2_frames.c: libFuzzer target over the HTTP/2 session's receiving path (src/h2/:
 * nghttp2 fed from the socket, and our callbacks: headers and their bound, data into a
 * stream's buffer, stream ends, SETTINGS, GOAWAY, PING), the code that meets whatever an
 * untrusted server sends.
 *
 * Input: byte 0 picks our options (bit 0: a 64-byte header bound, bit 1: 16 KiB stream
 * windows, bit 2: a POST with a body instead of GETs, bit 3: the stream is freed after
 * the first step that gave it bytes); the rest is what the server sends, after its end
 * an orderly close. A session on one end of a socket pair submits three requests, then
 * the server's bytes are written in pieces and stepped through. Invariants, checked with
 * abort():
 *   - a step returns only TP_OK, TP_EPROTO, TP_ECONNRESET or TP_ENOMEM, and once it
 *     failed it keeps failing with the same code;
 *   - open streams never go below 0 or above what was submitted; capacity never above
 *     our cap (100), and 0 once the connection is dead or draining;
 *   - a stream over has a result other than TP_PENDING: TP_OK only with a final status
 *     (200-599), else TP_ERESET, TP_ETOOBIG, TP_EPROTO, TP_ECONNRESET, TP_ENOMEM or
 *     TP_ECANCELED; a stream never holds more unread body than its window;
 *   - everything is freed (ASan's leak check).
 * The same file is linked with replay.c to run the corpus as a ctest test. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "h2/h2.h"

#define STREAMS 3

static bool step_code_ok(tp_err rc)
{
    return rc == TP_OK || rc == TP_EPROTO || rc == TP_ECONNRESET || rc == TP_ENOMEM;
}

static bool result_ok(const tp__h2_stream *st)
{
    tp_err rc = tp__h2_stream_result(st, NULL);
    if (rc == TP_OK)
        return tp__h2_stream_status(st) >= 200 && tp__h2_stream_status(st) <= 599;
    return rc == TP_ERESET || rc == TP_ETOOBIG || rc == TP_EPROTO || rc == TP_ECONNRESET ||
           rc == TP_ENOMEM || rc == TP_ECANCELED;
}

/* Reads and drops what the session wrote (its preface, our frames). */
static void drain(int fd)
{
    unsigned char sink[4096];
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    int bufsz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    tp__stream s;
    tp__stream_init(&s, sv[0]);
    tp__h2_options o = {.max_header_list = (mode & 1) ? 64 : 0,
                        .stream_window = (mode & 2) ? 16384 : 0};
    int32_t window = (mode & 2) ? 16384 : (1 << 20);
    tp__h2 *h = NULL;
    if (tp__h2_new(&s, &o, &h, NULL) != TP_OK) {
        close(sv[1]);
        return 0;
    }
    static const char body[] = "a request body";
    tp__h2_request rq = {.method = (mode & 4) ? "POST" : "GET",
                         .scheme = "https",
                         .authority = "fuzz.invalid",
                         .path = "/",
                         .body = (mode & 4) ? body : NULL,
                         .bodylen = (mode & 4) ? sizeof body - 1 : 0};
    tp__h2_stream *st[STREAMS] = {0};
    int submitted = 0;
    for (int i = 0; i < STREAMS; i++)
        if (tp__h2_submit(h, &rq, &st[i], NULL) == TP_OK)
            submitted++;
    CHECK(submitted == STREAMS);
    tp_err first_fail = TP_OK;
    size_t off = 0;
    unsigned char out[4096];
    bool freed0 = false;
    for (int round = 0; round < 64; round++) {
        if (off < size) {
            size_t piece = size - off < 1024 ? size - off : 1024;
            ssize_t n = send(sv[1], data + off, piece, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
        } else {
            shutdown(sv[1], SHUT_WR); /* the server's orderly close after its bytes */
        }
        int want = 0;
        tp_err rc = tp__h2_step(h, &want, NULL);
        CHECK(step_code_ok(rc));
        if (first_fail != TP_OK)
            CHECK(rc == first_fail);
        if (rc != TP_OK && first_fail == TP_OK)
            first_fail = rc;
        drain(sv[1]);
        CHECK(tp__h2_open_streams(h) >= 0 && tp__h2_open_streams(h) <= submitted);
        CHECK(tp__h2_capacity(h) <= 100);
        if (first_fail != TP_OK || tp__h2_draining(h))
            CHECK(tp__h2_capacity(h) == 0);
        for (int i = 0; i < STREAMS; i++) {
            if (st[i] == NULL)
                continue;
            CHECK(tp__h2_stream_buffered(st[i]) <= (size_t)window);
            if ((mode & 8) && i == 0 && !freed0 && tp__h2_stream_buffered(st[i]) > 0) {
                tp__h2_stream_free(h, st[i]);
                st[i] = NULL;
                freed0 = true;
                continue;
            }
            size_t got;
            do
                tp__h2_stream_read(h, st[i], out, sizeof out, &got);
            while (got > 0);
            if (tp__h2_stream_done(st[i]))
                CHECK(result_ok(st[i]));
        }
        if (first_fail != TP_OK)
            break;
    }
    for (int i = 0; i < STREAMS; i++)
        tp__h2_stream_free(h, st[i]);
    tp__h2_free(h);
    close(sv[1]);
    return 0;
}
