/* seconds.c: exact number formatting for the renderers. Seconds are printed from integer
 * nanoseconds as exact decimals, never through a double, so a bucket bound reads the
 * same in every scrape and in both formats. */
#include <inttypes.h>
#include <stdio.h>

#include "internal.h"

size_t tp__mfmt_seconds(uint64_t ns, char out[TP__MSECONDS_CAP])
{
    uint64_t sec = ns / 1000000000u, frac = ns % 1000000000u;
    int n;
    if (frac == 0) {
        n = snprintf(out, TP__MSECONDS_CAP, "%" PRIu64, sec);
    } else {
        n = snprintf(out, TP__MSECONDS_CAP, "%" PRIu64 ".%09" PRIu64, sec, frac);
        while (n > 0 && out[n - 1] == '0')
            n--;
        out[n] = '\0';
    }
    return n > 0 ? (size_t)n : 0;
}

void tp__mput_seconds(tp__buf *b, uint64_t ns)
{
    char tmp[TP__MSECONDS_CAP];
    tp__buf_put(b, tmp, tp__mfmt_seconds(ns, tmp));
}
