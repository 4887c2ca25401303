/* heatmap.h: a latency heat map over time for `tidepool bench --heatmap FILE.svg`:
 * recording (cheap, one instance per worker thread, merged at the end) and an SVG writer.
 *
 * A heat map is a row of time columns; each column holds a latency histogram with four
 * log buckets per power of two (about 19 % wide) from 1 us to 2^32 us (71 minutes), and
 * the number of connections opened in that column. Memory is bounded whatever the run's
 * length: when a sample falls past HEATMAP_MAX_COLS columns, the column width doubles and
 * neighbouring columns are folded together (about 264 KiB at most per instance).
 *
 * Threads: an instance belongs to one thread; nothing here locks. Give every worker its
 * own instance with the same t0 and bucket width, and heatmap_merge() them after the
 * workers are joined. */
#ifndef TP_TOOLS_HEATMAP_H
#define TP_TOOLS_HEATMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HEATMAP_PER_OCTAVE 4
#define HEATMAP_OCTAVES 32
#define HEATMAP_ROWS (HEATMAP_PER_OCTAVE * HEATMAP_OCTAVES)
#define HEATMAP_MAX_COLS 512

typedef struct heatmap_col {
    uint32_t n[HEATMAP_ROWS]; /* requests per latency row */
    uint32_t opens;           /* connections opened */
} heatmap_col;

typedef struct heatmap {
    int64_t t0_ns;     /* start of column 0, on the caller's clock (tp_clock_now()) */
    int64_t bucket_ns; /* column width; doubles when the run outgrows HEATMAP_MAX_COLS */
    heatmap_col *cols; /* ncols used of cap allocated */
    size_t ncols, cap;
    uint64_t samples, opens; /* totals */
    uint64_t dropped;        /* samples lost to a failed allocation */
} heatmap;

/* heatmap_init: an empty heat map whose column 0 starts at t0_ns, with columns
 * bucket_ns wide (> 0; 1 s suits long runs, 100 ms runs of under a minute). Allocates
 * nothing yet. Returns 0, or -1 when bucket_ns <= 0. */
int heatmap_init(heatmap *h, int64_t t0_ns, int64_t bucket_ns);

/* heatmap_free: releases the columns; h may be initialised again. */
void heatmap_free(heatmap *h);

/* heatmap_add_sample: one request that completed at t_ns after latency_us (clamped to
 * 1 us .. the last row); opened says whether it needed a new connection (for the HTTP
 * client: !tp_http_response_info.reused). Times before t0 count in column 0. Returns 0,
 * or -1 when memory ran out (the sample is counted in dropped). */
int heatmap_add_sample(heatmap *h, int64_t t_ns, int64_t latency_us, bool opened);

/* heatmap_add_opens: n connections opened at t_ns, without a request sample (for opens
 * learnt from elsewhere, e.g. a trace hook or the pool's counters). Returns 0 or -1. */
int heatmap_add_opens(heatmap *h, int64_t t_ns, uint32_t n);

/* heatmap_merge: adds src into dst. Both must share t0_ns and have column widths that
 * differ by a power of two (they do when initialised alike): the finer one is folded to
 * the coarser. Returns 0, or -1 on a mismatch or when memory ran out. */
int heatmap_merge(heatmap *dst, const heatmap *src);

/* heatmap_row_of: the row of a latency in microseconds (values below 1 us go to row 0,
 * values past the last row to HEATMAP_ROWS - 1). */
int heatmap_row_of(int64_t latency_us);

/* heatmap_row_lo_us: the lower edge of a row in microseconds (row HEATMAP_ROWS is the
 * upper edge of the last row). A row covers [lo(r), lo(r + 1)). */
double heatmap_row_lo_us(int row);

/* heatmap_write_file: renders h as an SVG document to f: x = time since t0, y = latency
 * (log scale, labelled), colour = requests per cell (log scale, with a legend), and
 * connection opens as bars with counts along the top. title is escaped (NULL: a default).
 * Pure over h. Returns 0, or -1 when writing failed (errno set). */
int heatmap_write_file(const heatmap *h, FILE *f, const char *title);

/* heatmap_write: heatmap_write_file() into the file at path (created or truncated).
 * Returns 0, or -1 with errno set. */
int heatmap_write(const heatmap *h, const char *path, const char *title);

#endif
