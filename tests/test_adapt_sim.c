/* test_adapt_sim.c: the adaptive limit (tidepool/adapt.h) against a fixed limit and the
 * seeds' heuristic in a discrete-event simulation (sim_adapt_engine.c: k workers,
 * exponential or lognormal service, open Poisson or bursty MMPP arrivals, capacity
 * changes mid-run, a client queue with a timeout). Fixed seeds: every run is
 * reproducible bit for bit. The bands asserted are stated next to each check.
 *
 * Prints one line per controller; with TIDEPOOL_SIM_TABLE=1 also a markdown table:
 *     TIDEPOOL_SIM_TABLE=1 ./build/tests/test_adapt_sim
 * (docs/adaptive.md quotes it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sim_adapt_engine.c"

/* Base capacity: 8 workers x 10 ms = 800 req/s; offered 600 req/s (75 %). At 40 s k
 * halves (400 req/s: 150 % overload); at 80 s k is back but service takes twice as long
 * (400 req/s again, and the old minRTT is stale); at 120 s everything is restored. */
static sim_scenario step_scenario(const char *name, sim_dist dist, int mmpp)
{
    sim_scenario sc = {
        .name = name, .duration_s = 160, .warmup_s = 10, .rate = 600, .net_s = 0.001,
        .queue_timeout_s = 1.0, .deadline_s = 2.0, .sigma = 1.0, .mmpp = mmpp, .dist = dist,
        .nphases = 4, .seed = 0x7469646570ull,
        .phases = {{0, 0.010, 8}, {40, 0.010, 4}, {80, 0.020, 8}, {120, 0.010, 8}},
    };
    return sc;
}

#define STEP_K_HALVES 1
#define STEP_LAT_DOUBLES 2

/* The equilibrium of the gradient rule in overload with k workers (reference 1.8):
 * L* = (1+b)k + sqrt((1+b)k). The convergence band is [0.5 (1+b)k, 1.5 L*]. */
static void band(int k, double *lo, double *hi)
{
    double base = 1.25 * k;
    *lo = 0.5 * base;
    *hi = 1.5 * (base + sqrt(base));
}

/* Seconds after phase i starts until the per-second mean limit enters the band and
 * stays there until the phase ends; -1 if it never does. */
static double converge_s(const sim_scenario *sc, const sim_result *r, int i)
{
    double lo, hi;
    band(sc->phases[i].workers, &lo, &hi);
    int from = (int)sc->phases[i].start_s;
    int to = i + 1 < sc->nphases ? (int)sc->phases[i + 1].start_s : r->nsec;
    int last_out = from - 1;
    for (int t = from; t < to; t++)
        if (r->limit_s[t] < lo || r->limit_s[t] > hi)
            last_out = t;
    return last_out == to - 1 ? -1.0 : (double)(last_out + 1 - from);
}

static const int fixed_sweep[] = {4, 6, 8, 12, 16, 24, 48};
#define NFIXED (sizeof fixed_sweep / sizeof fixed_sweep[0])

typedef struct row {
    char name[32];
    sim_result r;
    double conv_half, conv_lat;
} row;

static void run_row(const sim_scenario *sc, row *w, sim_pol_kind kind, int64_t fixed)
{
    static sim_policy pol; /* ~5 KB: keep it off the stack */
    pol_init(&pol, kind, fixed, 42, 0);
    sim_run(sc, &pol, &w->r);
    w->conv_half = converge_s(sc, &w->r, STEP_K_HALVES);
    w->conv_lat = converge_s(sc, &w->r, STEP_LAT_DOUBLES);
}

static void fmt_conv(char *buf, size_t n, double s)
{
    if (s < 0)
        snprintf(buf, n, "never");
    else
        snprintf(buf, n, "%.0f s", s);
}

static void print_rows(const sim_scenario *sc, row *rows, int n, int best)
{
    int md = getenv("TIDEPOOL_SIM_TABLE") != NULL && getenv("TIDEPOOL_SIM_TABLE")[0] == '1';
    print_message("scenario %s\n", sc->name);
    if (md) {
        printf("\n**%s**\n\n", sc->name);
        printf("| controller | goodput/s | failed | p50 | p99 | p99 steady | converge k/2 | "
               "converge 2x latency |\n");
        printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    }
    for (int i = 0; i < n; i++) {
        char c1[16], c2[16];
        fmt_conv(c1, sizeof c1, rows[i].conv_half);
        fmt_conv(c2, sizeof c2, rows[i].conv_lat);
        print_message("  %-18s goodput %6.1f/s failed %5.1f%% p50 %6.1f ms p99 %6.1f ms "
                      "p99-healthy %6.1f ms converge k/2 %-6s 2x-latency %-6s%s\n",
                      rows[i].name, rows[i].r.goodput, 100 * rows[i].r.loss,
                      1e3 * rows[i].r.p50_s, 1e3 * rows[i].r.p99_s, 1e3 * rows[i].r.p99_ok_s, c1, c2,
                      i == best ? "  <- best fixed" : "");
        if (md && (i < 2 || i == best))
            printf("| %s%s | %.1f | %.1f %% | %.1f ms | %.1f ms | %.1f ms | %s | %s |\n",
                   rows[i].name, i == best ? " (best in hindsight)" : "", rows[i].r.goodput,
                   100 * rows[i].r.loss, 1e3 * rows[i].r.p50_s, 1e3 * rows[i].r.p99_s,
                   1e3 * rows[i].r.p99_ok_s, c1, c2);
    }
}

/* P99_BOUND_S: the latency a fixed limit must keep to be "best in hindsight". Half the
 * run is 150 % overload, where any limit makes the excess wait out the 1 s client
 * queue timeout, so every p99 is near 1 s; a fixed limit so high that the server queue
 * pushes responses past the deadline is excluded. */
#define P99_BOUND_S 1.5

static void run_step(const sim_scenario *sc)
{
    row rows[2 + NFIXED];
    memset(rows, 0, sizeof rows);
    snprintf(rows[0].name, sizeof rows[0].name, "adaptive (ours)");
    run_row(sc, &rows[0], POL_OURS, 0);
    snprintf(rows[1].name, sizeof rows[1].name, "seeds' heuristic");
    run_row(sc, &rows[1], POL_HEUR, 0);
    int best = -1;
    for (size_t i = 0; i < NFIXED; i++) {
        row *w = &rows[2 + i];
        snprintf(w->name, sizeof w->name, "fixed %d", fixed_sweep[i]);
        run_row(sc, w, POL_FIXED, fixed_sweep[i]);
        if (w->r.p99_s <= P99_BOUND_S && (best < 0 || w->r.goodput > rows[best].r.goodput))
            best = (int)(2 + i);
    }
    print_rows(sc, rows, (int)(2 + NFIXED), best);
    assert_true(best >= 0);
    const row *ours = &rows[0], *fx = &rows[best];

    /* Convergence: within 10 simulated seconds of each capacity drop, the limit is in
     * [0.5 (1+b)k, 1.5 L*] and stays there for the rest of the 40 s phase. */
    assert_true(ours->conv_half >= 0 && ours->conv_half <= 10);
    assert_true(ours->conv_lat >= 0 && ours->conv_lat <= 10);
    /* Against the best fixed limit chosen in hindsight: goodput >= 0.9x, p99 <= 1.5x. */
    assert_true(ours->r.goodput >= 0.9 * fx->r.goodput);
    assert_true(ours->r.p99_s <= 1.5 * fx->r.p99_s);
    /* The same 1.5x on the steady-state p99 (healthy phases, 10 s in), where the cost
     * of the minRTT probes and of a limit set too tight would show. */
    assert_true(ours->r.p99_ok_s <= 1.5 * fx->r.p99_ok_s);
    for (int i = 0; i < (int)(2 + NFIXED); i++)
        free(rows[i].r.limit_s);
}

static void test_step_exponential_poisson(void **state)
{
    (void)state;
    sim_scenario sc = step_scenario("step, exponential service, Poisson arrivals", DIST_EXP, 0);
    run_step(&sc);
}

static void test_step_lognormal_mmpp(void **state)
{
    (void)state;
    sim_scenario sc = step_scenario("step, lognormal service (sigma 1), bursty MMPP arrivals",
                                    DIST_LOGNORMAL, 1);
    run_step(&sc);
}

/* Sustained 150 % overload for an hour: 4 workers x 40 ms (100 req/s), 150 req/s
 * offered. No upward drift: the least-squares slope of the per-second limit over
 * [300 s, 3600 s) times the 3300 s span stays within 10 % of its mean (Gradient2 walks
 * to its maximum here, reference 1.9), and the mean stays in the band of 4 workers. */
static void test_no_drift_under_overload(void **state)
{
    (void)state;
    sim_scenario sc = {
        .name = "drift", .duration_s = 3600, .warmup_s = 300, .rate = 150, .net_s = 0.001,
        .queue_timeout_s = 1.0, .deadline_s = 2.0, .dist = DIST_EXP, .nphases = 1,
        .seed = 0x64726966ull, .phases = {{0, 0.040, 4}},
    };
    static sim_policy pol;
    sim_result r;
    pol_init(&pol, POL_OURS, 0, 7, 0);
    sim_run(&sc, &pol, &r);
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int t = 300; t < r.nsec; t++) {
        double x = t, y = r.limit_s[t];
        n++, sx += x, sy += y, sxx += x * x, sxy += x * y;
    }
    double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), mean = sy / n;
    double lo, hi;
    band(4, &lo, &hi);
    for (int b0 = 300; b0 < r.nsec; b0 += 300) {
        double m = 0;
        for (int t = b0; t < b0 + 300; t++)
            m += r.limit_s[t] / 300;
        print_message("  drift block %4d s: mean limit %.2f\n", b0, m);
    }
    print_message("drift: mean limit %.2f, slope %.5f/s (%.2f over 3300 s), goodput %.1f/s, "
                  "p99 %.1f ms, %llu events\n",
                  mean, slope, slope * 3300, r.goodput, 1e3 * r.p99_s,
                  (unsigned long long)r.events);
    assert_true(fabs(slope) * 3300 <= 0.1 * mean);
    assert_true(mean >= lo && mean <= hi);
    free(r.limit_s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_exponential_poisson),
        cmocka_unit_test(test_step_lognormal_mmpp),
        cmocka_unit_test(test_no_drift_under_overload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
