/* src/metrics/internal.h: what the files of src/metrics/ share (never installed): the
 * exact seconds formatting, label sanitising and escaping, the table of exported stats
 * fields, the snapshot a render works from (pools and fleet budgets), and the registry's
 * structure.
 *
 * The metrics module is a consumer of the pool: it uses the public API only. */
#ifndef TP_METRICS_INTERNAL_H
#define TP_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/fork.h"
#include "base/sync.h"
#include "base/buf.h"
#include "tidepool/metrics.h"

/* ---- output ----------------------------------------------------------------------- */

/* The renderers write into a tp__buf (base/buf.h). Nanoseconds as exact decimal
 * seconds ("0.000001", "2147.483648", "0"): appended, or written NUL-terminated to out
 * (returns the length). */
#define TP__MSECONDS_CAP 32
void tp__mput_seconds(tp__buf *b, uint64_t ns);
size_t tp__mfmt_seconds(uint64_t ns, char out[TP__MSECONDS_CAP]);

/* ---- labels ----------------------------------------------------------------------- */

/* A sanitised label value: printable ASCII, at most 4 * TP_METRICS_KEY_LABEL_MAX bytes
 * (every byte of a hook's output hex-escaped), plus the NUL. */
#define TP__MLABEL_CAP (4 * TP_METRICS_KEY_LABEL_MAX + 1)

/* tp__mlabel_sanitize: copies n bytes of s into out (TP__MLABEL_CAP bytes), printable
 * ASCII as is and every other byte as \xHH; NUL-terminates; returns the length. */
size_t tp__mlabel_sanitize(const char *s, size_t n, char *out);

/* tp__mesc_prom: appends s escaped as a Prometheus label value (\\, \", \n). */
void tp__mesc_prom(tp__buf *b, const char *s);

/* ---- the exported fields of tp_stats ---------------------------------------------- */

typedef struct tp__mfield {
    size_t off;       /* offsetof(tp_stats, field) */
    const char *prom; /* metric family name */
    const char *json; /* JSON member name */
    const char *help; /* HELP text: no backslash, no newline */
    bool sparse;      /* Prometheus: a series only once it counted something (a
                         histogram most pools never fill: HTTP/2 PINGs) */
} tp__mfield;

/* Plain counters (uint64_t fields), and histograms (tp_histogram fields), in output
 * order. Rejects and closes carry a reason label and are handled by the renderers. */
extern const tp__mfield tp__mcounters[];
extern const size_t tp__mcounters_n;
extern const tp__mfield tp__mhists[];
extern const size_t tp__mhists_n;

#define TP__MFIELD_U64(st, f) (*(const uint64_t *)(const void *)((const char *)(st) + (f)->off))
#define TP__MFIELD_HIST(st, f) ((const tp_histogram *)(const void *)((const char *)(st) + (f)->off))

/* tp__mgoaway_name: the HTTP/2 error code of tp_stats.goaways slot i ("NO_ERROR" ..
 * "HTTP_1_1_REQUIRED", "other" for the last). */
const char *tp__mgoaway_name(int i);

/* tp__mbreaker_name: "closed", "open" or "half_open". */
const char *tp__mbreaker_name(tp_breaker_state s);

/* ---- snapshots -------------------------------------------------------------------- */

/* One series: a label value and the stats of every key folded into it. */
typedef struct tp__mseries {
    char label[TP__MLABEL_CAP];
    tp_stats st;
    bool other;    /* the key="other" series */
    int64_t nkeys; /* live keys in it */
} tp__mseries;

/* One tenant of a pool: its sanitised name and numbers. */
typedef struct tp__mtenant {
    char label[TP__MLABEL_CAP];
    tp_tenant_stats st;
} tp__mtenant;

/* One registered pool at one instant. */
typedef struct tp__mpool {
    const char *name; /* borrowed from the registry (render holds its lock) */
    tp_stats total;   /* pool-wide, taken after the keys */
    int64_t max_total, max_idle_total;
    int64_t breakers_open; /* live keys whose breaker is open or half-open */
    int64_t keys_folded;   /* live keys folded into "other" */
    tp__mseries **series;  /* shown keys by label, then "other" last */
    size_t nseries;
    tp__mtenant *tenants; /* in visit order; tenants are few and named by the program */
    size_t ntenants;
} tp__mpool;

/* One registered fleet budget at one instant: its names, sanitised like labels, and
 * this instance's view of it. */
typedef struct tp__mfleet {
    char budget[TP__MLABEL_CAP];
    char instance[TP__MLABEL_CAP];
    tp_fleet_stats st;
} tp__mfleet;

typedef struct tp__msnap {
    tp__mpool *pools;
    size_t npools;
    tp__mfleet *fleets; /* registration order */
    size_t nfleets;
    int bucket_step;
} tp__msnap;

/* ---- the registry ----------------------------------------------------------------- */

typedef struct tp__mentry {
    char *name;
    tp_pool *pool;
} tp__mentry;

struct tp_metrics {
    tp__mutex mu; /* guards entries and fleets, and serialises renders */
    tp__fork_guard fork_guard; /* mu, locked around fork() */
    tp_metrics_options o;
    tp__mentry *entries; /* registration order; guarded by mu */
    size_t n, cap;       /* guarded by mu */
    tp_fleet **fleets;   /* borrowed, registration order; guarded by mu */
    size_t nfleets, fleets_cap; /* guarded by mu */
};

/* tp__msnap_take_locked: snapshots every registered pool and fleet of m into s (m->mu held).
 * Calls the key-label hook. Returns TP_OK or TP_ENOMEM (s is then freed). */
tp_err tp__msnap_take_locked(tp_metrics *m, tp__msnap *s);
void tp__msnap_free(tp__msnap *s);

/* tp__mfleets_take_locked: the fleet part of tp__msnap_take_locked (s->fleets, nfleets).
 * Returns TP_OK or TP_ENOMEM (s->fleets is then NULL). */
tp_err tp__mfleets_take_locked(tp_metrics *m, tp__msnap *s);

/* The renderers: append one snapshot in their format. */
void tp__mrender_prom(tp__buf *b, const tp__msnap *s);
void tp__mrender_json(tp__buf *b, const tp__msnap *s);

/* tp__mprom_family: the `# HELP` and `# TYPE` lines of a Prometheus family. */
void tp__mprom_family(tp__buf *b, const char *name, const char *type, const char *help);

/* The fleet budgets' parts of the two renderers (fleet.c): the tidepool_fleet_* families
 * (nothing when no fleet is registered), and the JSON "fleets" array's elements. */
void tp__mrender_prom_fleets(tp__buf *b, const tp__msnap *s);
void tp__mrender_json_fleets(tp__buf *b, const tp__msnap *s);

/* ---- the exporter's address -------------------------------------------------------- */

struct sockaddr_storage;

/* tp__maddr_parse: parses "HOST:PORT" (see tp_metrics_serve_ex) into ss (AF_INET or
 * AF_INET6). Errors: TP_EINVAL with a message in err. */
tp_err tp__maddr_parse(const char *addr, struct sockaddr_storage *ss, tp_errinfo *err);
/* tp__maddr_is_loopback: 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address. */
bool tp__maddr_is_loopback(const struct sockaddr_storage *ss);

#endif
