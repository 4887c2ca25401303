/* tests/support/http_both.h: one HTTP request run either way the client offers, a
 * blocking call or an engine of its own polled until the request ends, and what came
 * back, for the tests that hold both paths to the same answers. Main thread or any
 * thread (no cmocka assertion inside). */
#ifndef TP_TEST_HTTP_BOTH_H
#define TP_TEST_HTTP_BOTH_H

#include <stdbool.h>
#include <stddef.h>

#include <tidepool/tidepool.h>

typedef struct hb_got {
    tp_err rc;
    int status;
    char body[256];             /* the body's first 255 bytes, NUL-terminated */
    size_t len;                 /* the whole body's length */
    char msg[256];              /* on failure: the error's message */
    tp_http_response_info info; /* content_encoding is cleared (it dies with the response) */
} hb_got;

/* hb_run: req on c, blocking (engine false) or on a new engine polled until it ends.
 * An engine that cannot be made is reported in rc and msg; a request still running 10 s
 * past its timeout (a minute without one) as TP_ETIMEDOUT. */
hb_got hb_run(tp_http_client *c, bool engine, const tp_http_request *req);

/* hb_get: GET url with a 5 s timeout, as hb_run. */
hb_got hb_get(tp_http_client *c, bool engine, const char *url);

#endif
