/* clock.c: tp_clock_now(), the library's monotonic nanosecond clock.
 *
 * Every lease reads the clock twice (hold time, idle time), so its cost matters:
 * clock_gettime(CLOCK_MONOTONIC) costs about 28 ns on the KVM machines we measure on,
 * the TSC about 11 ns. Where the CPU promises an invariant TSC (constant_tsc and
 * nonstop_tsc), we calibrate it once against CLOCK_MONOTONIC and scale it; elsewhere, or
 * with TIDEPOOL_CLOCK=monotonic in the environment, we use CLOCK_MONOTONIC directly.
 * Both are monotonic and ignore wall-clock changes. The clock only ever measures
 * intervals inside one process, so a calibration error of a few ppm is harmless. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#define TP__HAVE_TSC 1
#endif

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TP_NSEC_PER_SEC + ts.tv_nsec;
}

#ifdef TP__HAVE_TSC
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;
static _Atomic int tsc_state; /* 0: not calibrated yet, 1: TSC in use, 2: CLOCK_MONOTONIC */
static bool tsc_ok;
static uint64_t tsc_base;
static int64_t mono_base;
static uint64_t tsc_mult; /* ns per cycle, fixed point with 32 fractional bits */

static bool cpu_has_invariant_tsc(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return false;
    char line[4096];
    bool constant = false, nonstop = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break;
    }
    fclose(f);
    return constant && nonstop;
}

static void tsc_calibrate(void)
{
    const char *env = getenv("TIDEPOOL_CLOCK");
    if (env != NULL && strcmp(env, "monotonic") == 0)
        return;
    if (!cpu_has_invariant_tsc())
        return;
    /* Measure cycles over about 2 ms of CLOCK_MONOTONIC; the reads on each side are
     * paired tightly so the error is a few tens of ns over 2 ms (~1e-5). */
    int64_t m0 = mono_ns();
    uint64_t t0 = __rdtsc();
    int64_t m1;
    uint64_t t1;
    do {
        m1 = mono_ns();
        t1 = __rdtsc();
    } while (m1 - m0 < 2 * TP_NSEC_PER_MSEC);
    if (t1 <= t0)
        return;
    double ns_per_cycle = (double)(m1 - m0) / (double)(t1 - t0);
    if (ns_per_cycle <= 0.01 || ns_per_cycle > 100.0)
        return;
    tsc_mult = (uint64_t)(ns_per_cycle * 4294967296.0);
    tsc_base = t1;
    mono_base = m1;
    tsc_ok = true;
}
#endif

static void tsc_init(void)
{
    tsc_calibrate();
    atomic_store(&tsc_state, tsc_ok ? 1 : 2);
}

int64_t tp_clock_now(void)
{
#ifdef TP__HAVE_TSC
    int st = atomic_load_explicit(&tsc_state, memory_order_acquire);
    if (TP__UNLIKELY(st == 0)) {
        pthread_once(&tsc_once, tsc_init);
        st = atomic_load_explicit(&tsc_state, memory_order_acquire);
    }
    if (TP__LIKELY(st == 1)) {
        uint64_t t = __rdtsc();
        /* The TSCs of two CPUs may differ by a few cycles: never go below the base. */
        uint64_t d = t > tsc_base ? t - tsc_base : 0;
        return mono_base + (int64_t)(((unsigned __int128)d * tsc_mult) >> 32);
    }
#endif
    return mono_ns();
}

int64_t tp_deadline_after(int64_t d)
{
    if (d < 0)
        d = 0;
    return tp__saturating_add(tp_clock_now(), d);
}
