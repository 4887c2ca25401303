/* tests/support/metrics_drive.h: a pool on the fake connector, driven through a fixed
 * scenario that gives every exported number something to count, for the metrics tests:
 * opens, reuses, a wait, a busy reject, an acquire timeout, closes for five reasons, an
 * open failure that opens a breaker and a breaker reject, and keys that test the label
 * rules (a quote and a backslash, a newline, non-printable bytes with a NUL, a query
 * string holding a secret).
 *
 * Main thread only (cmocka assertions). */
#ifndef TP_TEST_METRICS_DRIVE_H
#define TP_TEST_METRICS_DRIVE_H

#include <stddef.h>

#include <tidepool/tidepool.h>

#include "support/fake_connector.h"

typedef struct md_key {
    const char *bytes;
    size_t len;
    const char *label; /* the label value the default hook gives it */
    const char *text;  /* how that label value is written in the Prometheus text */
} md_key;

enum { MD_KA, MD_KQ, MD_KN, MD_KB, MD_KS, MD_KF, MD_NKEYS };

/* The keys, indexed by the enum above. MD_KA ("http://127.0.0.1:8080") takes the whole
 * scenario; MD_KF is the failing destination whose breaker ends up open. */
extern const md_key md_keys[MD_NKEYS];

typedef struct md_pool {
    fake_connector f;
    tp_pool *p;
} md_pool;

/* md_start: fake connector and pool (no maintenance thread, max_per_key 2,
 * max_waiters_per_key 1, check_after_idle 0, breaker_threshold 1). md_drive: runs the
 * scenario once (call it once per pool). md_stop: destroys both. */
void md_start(md_pool *x);
void md_drive(md_pool *x);
void md_stop(md_pool *x);

/* One acquire and release of key (asserts success). */
void md_use(md_pool *x, int key);

#endif
