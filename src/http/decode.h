/* decode.h: streaming HTTP content decoding for the client (internal, never installed):
 * undoes the codings a Content-Encoding header lists (gzip, deflate, br, zstd, up to
 * TP__DECODE_MAX_LAYERS of them) on a response body as it arrives, with a bound on the
 * decoded size and on the decoded/encoded ratio against decompression bombs.
 *
 * The decoder is push-based like the response reader (parse.h): feed encoded bytes as
 * they come, decoded bytes go to a callback at once, then say the body ended with
 * tp__decoder_finish(). Memory stays flat whatever the body size: each layer decodes
 * into its own fixed 16 KiB buffer whose content is handed on (to the next layer, or to
 * the callback) before the layer decodes more, plus the codec's own state (zlib's 32 KiB
 * window, brotli's ring buffer of at most 16 MiB, zstd's window of at most 8 MiB).
 *
 * What the codings accept, and why:
 *   - gzip (and its old alias x-gzip): RFC 1952. Several concatenated members are one
 *     body, as gzip(1) and browsers treat them; after the last member only the end of
 *     the body may follow (anything else is TP_EPROTO, "trailing garbage").
 *   - deflate: HTTP means the zlib format (RFC 1950), but some servers send raw deflate
 *     (RFC 1951). The first two bytes decide: a valid zlib header means zlib, anything
 *     else raw deflate, as browsers and curl do.
 *   - br: brotli (RFC 7932), without the large-window extension.
 *   - zstd: RFC 8878, several frames back to back allowed; a frame asking for a window
 *     above 8 MiB (2^23, the bound browsers use) is TP_EPROTO, so a hostile frame cannot
 *     make us allocate a huge window.
 *   - identity: skipped.
 * An empty body is accepted for every coding (servers send Content-Encoding on empty
 * bodies, and curl and browsers accept them).
 *
 * Allocation goes through tp__malloc & co. (zlib and brotli are given our allocator, so
 * out-of-memory tests reach them); zstd uses the C library's allocator (its custom
 * allocator API is not part of its stable interface). No global state. */
#ifndef TP_HTTP_DECODE_H
#define TP_HTTP_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "tidepool/tidepool.h"

/* The codings, as parsed from Content-Encoding. */
typedef enum tp__coding {
    TP__CODING_IDENTITY = 0,
    TP__CODING_GZIP,
    TP__CODING_DEFLATE,
    TP__CODING_BR,
    TP__CODING_ZSTD
} tp__coding;

/* The most non-identity codings one body may list. Real servers apply one; more is
 * almost certainly an attack on CPU (each layer multiplies the work). */
#define TP__DECODE_MAX_LAYERS 4

/* tp__decode_out_fn: receives decoded bytes (len > 0, data valid only during the call),
 * in order. Returns 0 to go on; nonzero stops decoding (the feed returns TP_ECANCELED).
 * Called on the thread that feeds the decoder. */
typedef int (*tp__decode_out_fn)(void *ud, const char *data, size_t len);

/* tp__decoder: the decoding state of one body. Opaque. Not thread-safe: one thread at a
 * time (the one reading the response). */
typedef struct tp__decoder tp__decoder;

/* tp__decoder_create: a decoder for a body whose Content-Encoding value is the len bytes
 * at content_encoding (not NUL-terminated; NULL with len 0 is an empty value; not kept).
 * The value is a comma-separated list, case-insensitive, with optional whitespace
 * around elements and empty elements ignored: "gzip", "x-gzip", "deflate", "br",
 * "zstd", "identity" (skipped). The codings were applied in list order, so decoding
 * runs in reverse.
 * max_out: the most decoded bytes the body may have (0: no limit). max_ratio: the most
 * decoded bytes per encoded byte (0: no limit), checked once more than 1 MiB has been
 * decoded, so that small bodies with a high ratio (a page of zeros) pass; it applies to
 * what every layer produces, so a bomb in an inner layer is caught too.
 * *out receives the decoder, to free with tp__decoder_destroy(); it is NULL when every
 * coding is identity or the list is empty (nothing to decode, TP_OK) and on error.
 * Errors: TP_EPROTO (the message names the coding) for an unknown coding or more than
 * TP__DECODE_MAX_LAYERS; TP_ENOMEM. Thread-safe (touches nothing shared). */
tp_err tp__decoder_create(const char *content_encoding, size_t len, uint64_t max_out,
                          unsigned max_ratio, tp__decoder **out, tp_errinfo *err);

/* tp__decoder_feed: decodes the next n encoded bytes of the body (in is not kept; n 0 is
 * fine); the decoded bytes go to out(ud, ...), possibly in several calls, before the
 * feed returns. Errors: TP_EPROTO (corrupt data, or trailing garbage after the end of
 * a stream; the message names the coding and the reason); TP_ETOOBIG (max_out or
 * max_ratio passed; the message names the bound and the figures; the piece that would
 * pass it is not delivered); TP_ECANCELED (out returned nonzero); TP_ENOMEM; TP_ESTATE
 * after a successful tp__decoder_finish(). An error is sticky: every later feed and
 * finish returns it again, with the same message. */
tp_err tp__decoder_feed(tp__decoder *d, const void *in, size_t n, tp__decode_out_fn out, void *ud,
                        tp_errinfo *err);

/* tp__decoder_finish: the encoded body ended. TP_OK when every layer's stream ended
 * properly (or received no byte at all); TP_EPROTO otherwise ("truncated gzip stream",
 * or trailing bytes that do not form a whole new gzip member or zstd frame); the
 * sticky error of an earlier feed. Every layer hands on its output as soon as it is
 * decoded, so nothing is left to deliver here: out and ud are accepted for a coding
 * that would hold output back until the end, and are not called today. Calling it
 * again returns the same result. */
tp_err tp__decoder_finish(tp__decoder *d, tp__decode_out_fn out, void *ud, tp_errinfo *err);

/* tp__decoder_decoded: decoded bytes delivered to out so far. */
uint64_t tp__decoder_decoded(const tp__decoder *d);

/* tp__decoder_encoded: encoded bytes consumed so far (all bytes fed, unless a feed
 * failed part way through). */
uint64_t tp__decoder_encoded(const tp__decoder *d);

/* tp__decoder_name: the codings as a short string for messages and info, in the order
 * they were applied ("gzip", "br, gzip"), with canonical names (x-gzip is "gzip").
 * Owned by d, valid until tp__decoder_destroy(). */
const char *tp__decoder_name(const tp__decoder *d);

/* tp__decoder_destroy: frees d and everything it holds. NULL is a no-op. */
void tp__decoder_destroy(tp__decoder *d);

#endif
