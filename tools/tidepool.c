/* tidepool.c: the CLI's entry point: dispatches to a subcommand, and the small parsing
 * helpers the subcommands share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tidepool/tidepool.h"

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tidepool <command> [options]\n\n"
               "commands:\n"
               "  bench [URL]   load an HTTP server through a tidepool pool (no URL: a\n"
               "                built-in loopback server); `tidepool bench --help`\n"
               "  recommend     per-destination limits from queueing theory;\n"
               "                `tidepool recommend --help`\n"
               "  doctor        the host's TCP sockets per destination, port headroom\n"
               "                and findings with remedies; `tidepool doctor --help`\n"
               "  chaos         a fault-injecting TCP proxy (latency, bandwidth, resets,\n"
               "                black holes, half-open peers...); `tidepool chaos --help`\n"
               "  fleet status  a connection budget shared on Redis: every instance's\n"
               "                holding, share, demand and lease; `tidepool fleet --help`\n"
               "  version       print the library version\n");
}

bool parse_duration_s(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return false;
    if (*end == '\0' || strcmp(end, "s") == 0)
        *out = v;
    else if (strcmp(end, "ms") == 0)
        *out = v / 1e3;
    else if (strcmp(end, "us") == 0)
        *out = v / 1e6;
    else if (strcmp(end, "m") == 0)
        *out = v * 60;
    else
        return false;
    return true;
}

bool parse_count(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0)
        return false;
    if (*end == 'k' && end[1] == '\0')
        v *= 1000;
    else if (*end == 'm' && end[1] == '\0')
        v *= 1000000;
    else if (*end != '\0')
        return false;
    *out = v;
    return true;
}

long raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "recommend") == 0)
        return cmd_recommend(argc - 1, argv + 1);
    if (strcmp(cmd, "doctor") == 0)
        return cmd_doctor(argc - 1, argv + 1);
    if (strcmp(cmd, "chaos") == 0)
        return cmd_chaos(argc - 1, argv + 1);
    if (strcmp(cmd, "fleet") == 0)
        return cmd_fleet(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tidepool %s\n", tp_version_string());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "tidepool: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
