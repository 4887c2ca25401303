/* bench_plot.h: `tidepool bench --plot FILE.svg`: every 100 ms (1 s for runs over a
 * minute) the adaptive limit and the leases in use summed over the pool's keys, and the
 * p50 and p99 of the requests completed in the interval, drawn with tools/plot.h; with
 * --server-phases, a marker where the built-in server's capacity changed. */
#ifndef TP_TOOLS_BENCH_PLOT_H
#define TP_TOOLS_BENCH_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "bench_server.h"
#include "plot.h"

typedef struct bench_plot {
    plot p;
    int64_t next; /* when the next sample is due */
} bench_plot;

/* bench_plot_start: an empty chart from t0, with a marker per phase (phases: the built-in
 * server's schedule, started at t0; NULL when none). Returns 0, or -1 (out of memory). */
int bench_plot_start(bench_plot *bp, const bench_cfg *cfg, int64_t t0,
                     const bench_server_phase *phases, size_t nphases);
/* bench_plot_tick: takes a sample when one is due (the sampling thread, often). */
void bench_plot_tick(bench_plot *bp, tp_pool *pool, worker *ws, int64_t nws, int64_t now);
/* bench_plot_finish: writes the SVG (a message on stderr if it fails) and frees bp. */
void bench_plot_finish(bench_plot *bp, const bench_cfg *cfg);

#endif
