/* rand.c: the random source for jitter (expiry instants, backoffs, cool-downs). */
#include <stdint.h>

#include "base.h"

/* A per-thread xorshift64* generator seeded from the clock and the thread's address;
 * used only to spread expiry instants and backoffs, never for anything secret. */
double tp__rand_unit(void)
{
    static _Thread_local uint64_t s;
    if (s == 0) {
        s = (uint64_t)tp_clock_now() ^ ((uint64_t)(uintptr_t)&s * 0x9E3779B97F4A7C15ull);
        if (s == 0)
            s = 0x2545F4914F6CDD1Dull;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    uint64_t r = s * 0x2545F4914F6CDD1Dull;
    return (double)(r >> 11) / 9007199254740992.0;
}
