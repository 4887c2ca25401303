/* tools/plot.h: the time-series chart of `tidepool bench --plot FILE.svg`: the adaptive
 * limit, the leases in use and the latency (p50, p99) sampled once per interval, with
 * labelled markers where the server's capacity changed, written as one SVG document.
 *
 * Two stacked panels share the time axis: connections above (limit as a step line, in use
 * as a line), latency in milliseconds below. Stacked rather than twin y axes, because two
 * scales over one area make the reader guess which line belongs to which axis.
 *
 * Threads: an instance belongs to one thread (the bench's sampling thread); nothing locks. */
#ifndef TP_TOOLS_PLOT_H
#define TP_TOOLS_PLOT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One interval's sample; a negative value means "none" and leaves a gap in that line. */
typedef struct plot_point {
    int64_t t_ns;
    double limit, in_use; /* connections */
    double p50_ms, p99_ms;
} plot_point;

typedef struct plot_marker {
    int64_t t_ns;
    char *label; /* owned copy */
} plot_marker;

typedef struct plot {
    int64_t t0_ns;       /* time 0 of the x axis, on the caller's clock */
    int64_t interval_ns; /* sampling interval; a longer silence breaks the lines */
    plot_point *pts;     /* n used of cap, in the order added (time ascending) */
    size_t n, cap;
    plot_marker *marks;
    size_t nmarks, mcap;
} plot;

/* plot_init: an empty plot whose x axis starts at t0_ns (e.g. the run's start,
 * tp_clock_now()), sampled every interval_ns (> 0; 100 ms suits runs under a minute, 1 s
 * longer ones). Allocates nothing yet. Returns 0, or -1 when interval_ns <= 0. */
int plot_init(plot *p, int64_t t0_ns, int64_t interval_ns);

/* plot_free: releases the samples and marks; p may be initialised again. */
void plot_free(plot *p);

/* plot_add: the sample of the interval ending at t_ns (add in time order): the limit
 * (tp_stats' adaptive limit; negative when there is none), leases in use, and the latency
 * percentiles of the requests completed in the interval in microseconds (negative when
 * none completed). Returns 0, or -1 when memory ran out (the sample is lost). */
int plot_add(plot *p, int64_t t_ns, double limit, double in_use, int64_t p50_us, int64_t p99_us);

/* plot_mark: a labelled vertical marker at t_ns (e.g. "k=4, 2 ms" where the server's
 * phase changed). label is copied and escaped when written. Returns 0, or -1 when memory
 * ran out. */
int plot_mark(plot *p, int64_t t_ns, const char *label);

/* plot_write_file: renders p as an SVG document to f; title is escaped (NULL: a default).
 * Pure over p; an empty plot gives empty panels. Returns 0, or -1 when writing failed. */
int plot_write_file(const plot *p, FILE *f, const char *title);

/* plot_write: plot_write_file() into the file at path (created or truncated). Returns 0,
 * or -1 with errno set. */
int plot_write(const plot *p, const char *path, const char *title);

#endif
