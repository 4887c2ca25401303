/* mem_chase: what this machine charges for a dependent load from a working set of a
 * given size, to read scale_bench's random-key times against: a pointer chase through
 * one word per cache line, in a random cycle over 1 to 256 MiB.
 *
 * usage: mem_chase
 * Prints one JSON line: {"tool": "mem_chase", "mib": [...], "ns_per_load": [...]}. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define LINE 64
#define LOADS 5000000L

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ns per load over a random cycle through every line of a mib-MiB block. */
static double chase(size_t mib)
{
    size_t lines = mib * 1024 * 1024 / LINE, stride = LINE / sizeof(size_t);
    size_t *block = malloc(lines * LINE), *order = malloc(lines * sizeof *order);
    if (block == NULL || order == NULL) {
        fprintf(stderr, "mem_chase: out of memory at %zu MiB\n", mib);
        exit(1);
    }
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < lines; i++)
        order[i] = i;
    for (size_t i = lines - 1; i > 0; i--) { /* Fisher-Yates with xorshift */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = (size_t)(x % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < lines; i++)
        block[order[i] * stride] = order[(i + 1) % lines] * stride;
    size_t p = order[0] * stride;
    double t0 = now_ns();
    for (long i = 0; i < LOADS; i++)
        p = block[p];
    double ns = (now_ns() - t0) / LOADS;
    if (p == SIZE_MAX) /* keeps the chase from being optimised away */
        puts("");
    free(block);
    free(order);
    return ns;
}

int main(void)
{
    printf("{\"tool\": \"mem_chase\", \"mib\": [");
    for (size_t m = 1; m <= 256; m *= 2)
        printf("%s%zu", m > 1 ? ", " : "", m);
    printf("], \"ns_per_load\": [");
    for (size_t m = 1; m <= 256; m *= 2)
        printf("%s%.1f", m > 1 ? ", " : "", chase(m));
    printf("]}\n");
    return 0;
}
