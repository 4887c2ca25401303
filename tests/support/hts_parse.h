/* tests/support/hts_parse.h: request framing for http_test_server.c (internal to it):
 * where a request received as raw bytes ends, and the few facts the server acts on.
 * Lenient where tests do not care (header syntax), strict where a wrong answer would
 * desynchronise the connection (body framing). */
#ifndef TP_TEST_HTS_PARSE_H
#define TP_TEST_HTS_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* Limits beyond which a request is treated as malformed. */
#define HTS_MAX_HEADER_BYTES (64u * 1024u)
#define HTS_MAX_BODY_BYTES (1024u * 1024u)

typedef struct hts_req {
    size_t len; /* bytes of the whole request: header block and body with its framing */
    bool head;  /* the method is HEAD (the response has no body) */
    bool close; /* "Connection: close", or HTTP/1.0 without "Connection: keep-alive" */
} hts_req;

/* Looks for one complete request at the start of buf[0..n). Returns 1 and fills *req when
 * it is complete, 0 when more bytes are needed, -1 when it is malformed or over the
 * limits. Pure function. */
int hts_parse_request(const char *buf, size_t n, hts_req *req);

#endif
