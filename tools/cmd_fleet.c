/* cmd_fleet.c: `tidepool fleet status redis://HOST:PORT NAME [--json]`: what a budget
 * shared on Redis (tidepool/fleet.h) looks like from outside: its cap, and for every
 * instance what it holds, its fair share, what it asked for and how long its lease has
 * left. Reads only: it joins no budget. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidepool/fleet.h"

#include "cli.h"

#define MAX_MEMBERS 1024

static void usage(FILE *f)
{
    fprintf(f, "usage: tidepool fleet status redis://HOST:PORT NAME [--json]\n"
               "  every instance of budget NAME: permits held, fair share, demand (in use,\n"
               "  opening and waiting), lease left and time since its last heartbeat\n");
}

static void print_json(const char *name, int64_t cap, const tp_fleet_member *m, size_t n,
                       size_t total)
{
    int64_t held = 0;
    for (size_t i = 0; i < n; i++)
        held += m[i].held;
    printf("{\"budget\":\"%s\",\"cap\":%lld,\"held\":%lld,\"instances\":%zu,\"members\":[", name,
           (long long)cap, (long long)held, total);
    for (size_t i = 0; i < n; i++)
        printf("%s{\"instance\":\"%s\",\"held\":%lld,\"share\":%lld,\"demand\":%lld,"
               "\"lease_left_s\":%.3f,\"age_s\":%.3f}",
               i ? "," : "", m[i].instance, (long long)m[i].held, (long long)m[i].share,
               (long long)m[i].demand, (double)m[i].lease_ns / 1e9, (double)m[i].age_ns / 1e9);
    printf("]}\n");
}

static void print_text(const char *name, int64_t cap, const tp_fleet_member *m, size_t n,
                       size_t total)
{
    int64_t held = 0;
    for (size_t i = 0; i < n; i++)
        held += m[i].held;
    printf("budget %s: cap %lld, %lld held by %zu instance%s\n", name, (long long)cap,
           (long long)held, total, total == 1 ? "" : "s");
    printf("  %-40s %6s %6s %6s %10s %9s\n", "instance", "held", "share", "demand", "lease left",
           "heartbeat");
    for (size_t i = 0; i < n; i++)
        printf("  %-40s %6lld %6lld %6lld %9.1fs %8.1fs ago%s\n", m[i].instance,
               (long long)m[i].held, (long long)m[i].share, (long long)m[i].demand,
               (double)m[i].lease_ns / 1e9, (double)m[i].age_ns / 1e9,
               m[i].lease_ns < 0 ? "  (lapsed: held back while its connections remain)" : "");
    if (total > n)
        printf("  ... and %zu more\n", total - n);
}

int cmd_fleet(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 4 || strcmp(argv[1], "status") != 0 ||
        (argc == 5 && strcmp(argv[4], "--json") != 0) || argc > 5) {
        usage(stderr);
        return 2;
    }
    bool json = argc == 5;
    tp_fleet_member *m = calloc(MAX_MEMBERS, sizeof *m);
    if (m == NULL)
        return 1;
    int64_t cap = 0;
    size_t n = 0;
    tp_errinfo e;
    tp_err rc = tp_fleet_status(argv[2], argv[3], &cap, m, MAX_MEMBERS, &n, &e);
    if (rc != TP_OK) {
        fprintf(stderr, "fleet status: %s: %s\n", tp_err_name(rc), e.msg);
        free(m);
        return rc == TP_EINVAL ? 2 : 1;
    }
    size_t shown = n < MAX_MEMBERS ? n : MAX_MEMBERS;
    if (json)
        print_json(argv[3], cap, m, shown, n);
    else
        print_text(argv[3], cap, m, shown, n);
    free(m);
    return 0;
}
