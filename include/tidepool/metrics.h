/* tidepool/metrics.h: pool statistics as Prometheus text exposition and JSON, and an
 * embedded HTTP exporter serving them.
 *
 * A program creates one registry (tp_metrics), registers the pools it wants exported
 * under a name, and either renders the registry itself (tp_metrics_render) or lets the
 * exporter serve it: GET /metrics (Prometheus text format 0.0.4) and GET /debug/pools
 * (JSON). docs/metrics.md lists every metric family with its labels and meaning.
 *
 * Series and labels. Every per-key family carries the labels pool (the registered name)
 * and key (the key's label value, see below). To bound cardinality, at most
 * max_keys_per_pool keys of a pool (those with the most acquires) get a series of their
 * own; every other key, and everything the pool counted for keys it has since forgotten,
 * is folded into one series with key="other", which is always present. Summing a family
 * over key therefore gives the pool-wide value (sum by (pool) (...)): the library
 * never emits a separate pool-wide series of a per-key family, so Prometheus never sees
 * a series twice. When a key moves into or out of the top keys, the counters of
 * key="other" may go down once; Prometheus treats that as a counter reset. A few
 * families are per pool only (tidepool_keys, tidepool_breakers_open, the pool-wide
 * limits) and carry only the pool label.
 *
 * Key labels. Keys are opaque bytes and may hold anything, so a key never reaches the
 * output as is: a key-label hook turns it into a label value (the default shows printable
 * ASCII as is, drops a URL's query string and user info, hex-escapes other bytes and
 * truncates to TP_METRICS_KEY_LABEL_MAX bytes), then the renderer hex-escapes whatever
 * non-printable bytes a custom hook produced and escapes the value for the output format.
 * Keys that end up with the same label value share one series.
 *
 * Fleet budgets (tidepool/fleet.h) may be registered too: each gets one series per family
 * of tidepool_fleet_*, labelled budget and instance, and an entry of the JSON document's
 * "fleets" array.
 *
 * Threads: every function here is thread-safe unless it says otherwise. */
#ifndef TIDEPOOL_METRICS_H
#define TIDEPOOL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "fleet.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_metrics tp_metrics;
typedef struct tp_metrics_exporter tp_metrics_exporter;

/* ---- key labels ------------------------------------------------------------------- */

/* The most bytes a key-label hook may write (and the default writes at most). */
#define TP_METRICS_KEY_LABEL_MAX 128

/* tp_metrics_key_label_fn: turns a key (keylen bytes, valid during the call) into a label
 * value: writes at most cap bytes to out (no terminating NUL needed) and returns how many
 * it wrote (a larger return is taken as cap). It may redact, shorten or map keys to
 * tenant names; keys mapped to the same value share a series. Called while the registry
 * renders, with the registry's lock held: it must not call tp_metrics_* functions on the
 * same registry. It may run on the exporter's thread. */
typedef size_t (*tp_metrics_key_label_fn)(void *ud, const void *key, size_t keylen, char *out,
                                          size_t cap);

/* tp_metrics_key_label_default: the default hook (ud unused). Cuts the key at its first
 * '?' (a query string may hold tokens), drops the user info of a URL-like key
 * ("scheme://user:pass@host" becomes "scheme://host"), copies printable ASCII bytes and
 * writes every other byte as the four characters \xHH (lowercase hex), stopping before
 * an escape or byte would exceed cap. Returns the number of bytes written. Thread-safe;
 * may be called from a custom hook to post-process its result. */
TP_EXTERN size_t tp_metrics_key_label_default(void *ud, const void *key, size_t keylen, char *out,
                                              size_t cap);

/* ---- the registry ----------------------------------------------------------------- */

#define TP_METRICS_OPTIONS_VERSION 1

/* tp_metrics_options: fill with tp_metrics_options_init(), then change what you need. */
typedef struct tp_metrics_options {
    unsigned version;                  /* TP_METRICS_OPTIONS_VERSION */
    int64_t max_keys_per_pool;         /* keys with a series of their own per pool; the rest go to
                                          key="other". 100; 0 = only "other"; TP_UNLIMITED */
    int bucket_step;                   /* Prometheus histograms list every bucket_step-th bound
                                          of tp_histogram's buckets: 1 = all 63 (factor sqrt 2
                                          apart), 2 = 32 (factor 2, from 1 us to 2147 s), up to 8.
                                          2. JSON always has every bucket. */
    tp_metrics_key_label_fn key_label; /* NULL: tp_metrics_key_label_default */
    void *key_label_ud;                /* borrowed; must outlive the registry */
} tp_metrics_options;

/* tp_metrics_options_init: fills o with the defaults above. */
TP_EXTERN void tp_metrics_options_init(tp_metrics_options *o);

/* tp_metrics_create: creates an empty registry. o may be NULL for the defaults; it is
 * copied. Errors: TP_EINVAL (unknown version, max_keys_per_pool < 0, bucket_step outside
 * 1..8; err names the field), TP_ENOMEM, TP_ESYS. On failure *out is NULL. */
TP_EXTERN tp_err tp_metrics_create(const tp_metrics_options *o, tp_metrics **out,
                                   tp_errinfo *err) TP_WARN_UNUSED;

/* tp_metrics_destroy: frees the registry. Pools are only borrowed and stay untouched.
 * Every exporter serving m must have been stopped first, and no other call on m may be
 * running. NULL is a no-op. */
TP_EXTERN void tp_metrics_destroy(tp_metrics *m);

/* tp_metrics_register: exports pool under name, which becomes the value of the label
 * pool. name is copied: 1 to 128 printable ASCII characters, unique in the registry.
 * The pool is borrowed: it must stay alive until tp_metrics_unregister() of its name
 * returned (or the registry is destroyed). The same pool may be registered under two
 * names. Errors: TP_EINVAL (NULL argument, bad or duplicate name; err says which),
 * TP_ENOMEM. */
TP_EXTERN tp_err tp_metrics_register(tp_metrics *m, const char *name, tp_pool *pool,
                                     tp_errinfo *err) TP_WARN_UNUSED;

/* tp_metrics_unregister: stops exporting the pool registered under name. When it
 * returns, no render (nor exporter request) touches that pool any more, so the pool may
 * then be destroyed. Errors: TP_EINVAL (NULL argument or no pool of that name). */
TP_EXTERN tp_err tp_metrics_unregister(tp_metrics *m, const char *name);

/* tp_metrics_register_fleet: exports the fleet budget f (its tp_fleet_stats_get() view),
 * labelled budget (tp_fleet_name) and instance (tp_fleet_instance). The fleet is
 * borrowed like a pool: it must stay alive until tp_metrics_unregister_fleet() of it
 * returned (or the registry is destroyed). Errors: TP_EINVAL (NULL argument, or f is
 * already registered in m; err says which), TP_ENOMEM. */
TP_EXTERN tp_err tp_metrics_register_fleet(tp_metrics *m, tp_fleet *f,
                                           tp_errinfo *err) TP_WARN_UNUSED;

/* tp_metrics_unregister_fleet: stops exporting f. When it returns, no render (nor
 * exporter request) touches f any more, so it may then be destroyed. Errors: TP_EINVAL
 * (NULL argument, or f is not registered in m). */
TP_EXTERN tp_err tp_metrics_unregister_fleet(tp_metrics *m, tp_fleet *f);

/* ---- rendering -------------------------------------------------------------------- */

typedef enum tp_metrics_format {
    TP_METRICS_PROMETHEUS = 0, /* text exposition format 0.0.4 */
    TP_METRICS_JSON = 1        /* the /debug/pools document, see docs/metrics.md */
} tp_metrics_format;

/* tp_metrics_render: renders every registered pool, in registration order, then every
 * registered fleet, into a new NUL-terminated string: *out (release it with tp_free()),
 * its length without the NUL in *len (len may be NULL). The text is built from one
 * snapshot per pool (keys visited, then the pool-wide stats) and one per fleet; with
 * nothing registered it is empty (Prometheus) or a document with no pools and no fleets
 * (JSON). Errors: TP_EINVAL (NULL m or out, unknown format),
 * TP_ENOMEM; *out is then NULL. */
TP_EXTERN tp_err tp_metrics_render(tp_metrics *m, tp_metrics_format fmt, char **out,
                                   size_t *len) TP_WARN_UNUSED;

/* tp_metrics_render_buf: tp_metrics_render() into the caller's buffer buf of cap bytes.
 * *len (required) receives the full length without the NUL. If it fits (len < cap), buf
 * holds the NUL-terminated text and TP_OK is returned; otherwise TP_ETOOBIG, and buf
 * holds an empty string when cap > 0 (a later call may still need more: the pools
 * change). Errors: TP_EINVAL, TP_ENOMEM, TP_ETOOBIG. */
TP_EXTERN tp_err tp_metrics_render_buf(tp_metrics *m, tp_metrics_format fmt, char *buf, size_t cap,
                                       size_t *len) TP_WARN_UNUSED;

/* ---- the exporter ----------------------------------------------------------------- */

#define TP_METRICS_SERVE_OPTIONS_VERSION 1

typedef struct tp_metrics_serve_options {
    unsigned version;           /* TP_METRICS_SERVE_OPTIONS_VERSION */
    bool allow_non_loopback;    /* serve on an address other than 127.0.0.0/8 or ::1 (the
                                   numbers may tell an attacker about the program's
                                   destinations). false */
    unsigned max_connections;   /* concurrent HTTP connections. 16 */
    int64_t connection_timeout; /* an idle HTTP connection is closed after this (whole
                                   seconds, at least 1). 10 s */
} tp_metrics_serve_options;

/* tp_metrics_serve_options_init: fills o with the defaults above. */
TP_EXTERN void tp_metrics_serve_options_init(tp_metrics_serve_options *o);

/* tp_metrics_serve: starts an HTTP exporter for m on addr with the default options. See
 * tp_metrics_serve_ex(). */
TP_EXTERN tp_err tp_metrics_serve(tp_metrics *m, const char *addr, tp_metrics_exporter **out,
                                  tp_errinfo *err) TP_WARN_UNUSED;

/* tp_metrics_serve_ex: starts an HTTP exporter for m on its own thread (libmicrohttpd).
 * addr is "HOST:PORT" with HOST a numeric IPv4 address, "[IPv6]", "localhost" or empty
 * (":PORT" means 127.0.0.1); PORT 0 picks a free port (tp_metrics_exporter_port() says
 * which). It serves GET (and HEAD) /metrics as text/plain; version=0.0.4 and
 * /debug/pools as application/json; other paths get 404, other methods 405.
 * o may be NULL for the defaults. m is borrowed: stop the exporter before destroying m.
 * Errors: TP_EINVAL (NULL argument, malformed addr, a non-loopback address without
 * allow_non_loopback, bad options; err says which), TP_ESYS (socket, bind or listen
 * failed: err has the errno, e.g. EADDRINUSE; or the server thread did not start),
 * TP_ENOMEM, TP_ESTATE (the library was built without libmicrohttpd). On failure *out
 * is NULL. */
TP_EXTERN tp_err tp_metrics_serve_ex(tp_metrics *m, const char *addr,
                                     const tp_metrics_serve_options *o, tp_metrics_exporter **out,
                                     tp_errinfo *err) TP_WARN_UNUSED;

/* tp_metrics_exporter_port: the TCP port e listens on (0 for NULL). */
TP_EXTERN int tp_metrics_exporter_port(const tp_metrics_exporter *e);

/* tp_metrics_exporter_stop: stops serving, closes the listening socket and every
 * connection, joins the server thread and frees e. A request being answered is finished
 * first. Must not be called from a key-label hook. NULL is a no-op. */
TP_EXTERN void tp_metrics_exporter_stop(tp_metrics_exporter *e);

#ifdef __cplusplus
}
#endif
#endif
