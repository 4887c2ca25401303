/* cmd_bench_args.c: the command line of `tidepool bench`: its usage text and the parsing
 * of its options into a bench_cfg. A cmd_ file because it uses the CLI's shared parsers
 * (parse_count(), parse_duration_s() in tidepool.c), which the test objects do not have. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include "bench.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tidepool bench [URL] [options]   (URL: http://, https://, postgres://, redis://)\n"
        "  -c, --concurrency N   requests in flight (default 16)\n"
        "  -t, --threads N       event loops, one per thread (default 1)\n"
        "  -r, --rate R          open loop: start R requests per second whatever the\n"
        "                        server does; latency counts from each scheduled start\n"
        "  -d, --duration D      how long: 10, 10s, 500ms, 2m (default 10s)\n"
        "  -n, --requests N      stop after N requests (with -d: whichever first)\n"
        "  -m, --method M        request method (default GET)\n"
        "  -H, --header 'N: V'   add a request header (repeatable)\n"
        "  -b, --body STR        request body\n"
        "      --max-per-host N  connections per destination (default 64)\n"
        "      --idle-timeout D  close connections idle this long (default 30s)\n"
        "      --max-idle-per-host N  idle connections kept per destination (default:\n"
        "                        as many as --max-per-host; 0 closes every connection\n"
        "                        at release: churn, for doctor --trace to find)\n"
        "      --timeout D       whole-request timeout (default none)\n"
        "      --cacert FILE     trust this CA for https\n"
        "      --insecure        do not verify the server's certificate\n"
        "      --cert FILE       https: present this client certificate (PEM)\n"
        "      --key FILE        its private key (default: in the --cert file)\n"
        "      --pass PHRASE     the key's passphrase\n"
        "      --proxy URL       HTTP: through this proxy (http://[user:pw@]host:port;\n"
        "                        https:// URLs through a CONNECT tunnel)\n"
        "      --compressed      HTTP: ask for gzip, deflate, br, zstd and decode them\n"
        "      --http2           HTTP/2 only: https:// by ALPN, http:// by prior knowledge\n"
        "      --http1.1         HTTP/1.1 only (default: HTTP/2 where the server agrees by\n"
        "                        ALPN, else HTTP/1.1)\n"
        "      --unix-socket P   HTTP: connect to the Unix socket P, whatever the URL's\n"
        "                        host (which still names the Host header)\n"
        "      --json            print one JSON line at the end\n"
        "      --heatmap FILE    write an SVG heat map of latency over time, with\n"
        "                        connection opens marked\n"
        "      --query SQL       postgres:// URLs: the statement (default SELECT 1)\n"
        "      --command CMD     redis:// URLs: the command (default PING)\n"
        "      --metrics ADDR    serve the pool's metrics on ADDR (loopback, e.g.\n"
        "                        127.0.0.1:9464) at /metrics and /debug/pools\n"
        "      --adaptive        HTTP: let the pool's adaptive limit size each\n"
        "                        destination (at most --max-per-host)\n"
        "      --server-phases S built-in server only: its capacity over time, phases\n"
        "                        AT_MS:WORKERS:SERVICE_US separated by commas, e.g.\n"
        "                        0:8:2000,5000:4:2000 (WORKERS 0: no limit)\n"
        "      --plot FILE       write an SVG of the limit, leases in use and p50/p99\n"
        "                        over time, with the server's phases marked\n"
        "      --fleet URL       share one connection budget with every other process\n"
        "                        benchmarking with the same --fleet-name, on the Redis\n"
        "                        at URL (redis://HOST:PORT)\n"
        "      --fleet-name NAME the budget's name\n"
        "      --fleet-cap N     connections the whole fleet may hold\n"
        "      --fleet-instance I this process's name in the budget (default\n"
        "                        HOST/PID/RANDOM)\n"
        "  -q, --quiet           no live line\n"
        "With no URL, a built-in loopback server is started and benchmarked.\n");
}

int bench_parse_args(int argc, char **argv, bench_cfg *cfg)
{
    static const struct option longs[] = {{"concurrency", required_argument, NULL, 'c'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"threads", required_argument, NULL, 't'},
                                          {"rate", required_argument, NULL, 'r'},
                                          {"requests", required_argument, NULL, 'n'},
                                          {"method", required_argument, NULL, 'm'},
                                          {"header", required_argument, NULL, 'H'},
                                          {"body", required_argument, NULL, 'b'},
                                          {"max-per-host", required_argument, NULL, 1},
                                          {"idle-timeout", required_argument, NULL, 2},
                                          {"timeout", required_argument, NULL, 3},
                                          {"cacert", required_argument, NULL, 4},
                                          {"insecure", no_argument, NULL, 5},
                                          {"json", no_argument, NULL, 6},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"heatmap", required_argument, NULL, 7},
                                          {"query", required_argument, NULL, 8},
                                          {"command", required_argument, NULL, 9},
                                          {"metrics", required_argument, NULL, 10},
                                          {"adaptive", no_argument, NULL, 11},
                                          {"server-phases", required_argument, NULL, 12},
                                          {"plot", required_argument, NULL, 13},
                                          {"unix-socket", required_argument, NULL, 14},
                                          {"cert", required_argument, NULL, 15},
                                          {"key", required_argument, NULL, 16},
                                          {"pass", required_argument, NULL, 17},
                                          {"proxy", required_argument, NULL, 18},
                                          {"compressed", no_argument, NULL, 19},
                                          {"http2", no_argument, NULL, 20},
                                          {"http1.1", no_argument, NULL, 21},
                                          {"fleet", required_argument, NULL, 22},
                                          {"fleet-name", required_argument, NULL, 23},
                                          {"fleet-cap", required_argument, NULL, 24},
                                          {"fleet-instance", required_argument, NULL, 25},
                                          {"max-idle-per-host", required_argument, NULL, 26},
                                          {NULL, 0, NULL, 0}};
    *cfg = (bench_cfg){
        .concurrency = 16, .threads = 1, .seconds = 10, .method = "GET", .idle_timeout_s = -1,
        .max_idle_per_host = -1};
    bool have_d = false, have_n = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:t:r:d:n:m:H:b:qh", longs, NULL)) != -1) {
        switch (o) {
        case 't':
            if (!parse_count(optarg, &cfg->threads) || cfg->threads < 1 || cfg->threads > 256)
                return fprintf(stderr, "bench: -t: want 1..256\n"), -1;
            break;
        case 'r': {
            char *end;
            cfg->rate = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(cfg->rate > 0 && cfg->rate <= 1e7))
                return fprintf(stderr, "bench: --rate: want requests per second in (0, 1e7]\n"), -1;
            break;
        }
        case 'c':
            if (!parse_count(optarg, &cfg->concurrency) || cfg->concurrency < 1 ||
                cfg->concurrency > 100000)
                return fprintf(stderr, "bench: -c: want 1..100000\n"), -1;
            break;
        case 'd':
            if (!parse_duration_s(optarg, &cfg->seconds) || cfg->seconds <= 0)
                return fprintf(stderr, "bench: -d: bad duration '%s'\n", optarg), -1;
            have_d = true;
            break;
        case 'n':
            if (!parse_count(optarg, &cfg->total) || cfg->total < 1)
                return fprintf(stderr, "bench: -n: want a positive count\n"), -1;
            have_n = true;
            break;
        case 'm':
            cfg->method = optarg;
            break;
        case 'H': {
            const char *colon = strchr(optarg, ':');
            if (colon == NULL || colon == optarg || cfg->nheaders == MAX_HEADERS)
                return fprintf(stderr, "bench: -H: want 'Name: value' (at most %d)\n", MAX_HEADERS),
                       -1;
            char *name = strndup(optarg, (size_t)(colon - optarg));
            if (name == NULL)
                return -1;
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            cfg->hstore[cfg->nheaders] = name;
            cfg->hnames[cfg->nheaders] = name;
            cfg->hvalues[cfg->nheaders] = v;
            cfg->nheaders++;
            break;
        }
        case 'b':
            cfg->body = optarg;
            break;
        case 1:
            if (!parse_count(optarg, &cfg->max_per_host) || cfg->max_per_host < 1)
                return fprintf(stderr, "bench: --max-per-host: want a positive count\n"), -1;
            break;
        case 26:
            if (!parse_count(optarg, &cfg->max_idle_per_host))
                return fprintf(stderr, "bench: --max-idle-per-host: want a count (0 or more)\n"),
                       -1;
            break;
        case 2:
            if (!parse_duration_s(optarg, &cfg->idle_timeout_s))
                return fprintf(stderr, "bench: --idle-timeout: bad duration\n"), -1;
            break;
        case 3:
            if (!parse_duration_s(optarg, &cfg->timeout_s) || cfg->timeout_s <= 0)
                return fprintf(stderr, "bench: --timeout: bad duration\n"), -1;
            break;
        case 4:
            cfg->cacert = optarg;
            break;
        case 5:
            cfg->insecure = true;
            break;
        case 6:
            cfg->json = true;
            break;
        case 7:
            cfg->heatmap = optarg;
            break;
        case 8:
            cfg->query = optarg;
            break;
        case 9:
            cfg->command = optarg;
            break;
        case 10:
            cfg->metrics = optarg;
            break;
        case 11:
            cfg->adaptive = true;
            break;
        case 12:
            cfg->server_phases = optarg;
            break;
        case 13:
            cfg->plot = optarg;
            break;
        case 14:
            cfg->unix_socket = optarg;
            break;
        case 15:
            cfg->cert = optarg;
            break;
        case 16:
            cfg->key = optarg;
            break;
        case 17:
            cfg->pass = optarg;
            break;
        case 18:
            cfg->proxy = optarg;
            break;
        case 19:
            cfg->compressed = true;
            break;
        case 20:
            cfg->http_version = TP_HTTP_VERSION_2;
            break;
        case 21:
            cfg->http_version = TP_HTTP_VERSION_1_1;
            break;
        case 22:
            cfg->fleet = optarg;
            break;
        case 23:
            cfg->fleet_name = optarg;
            break;
        case 24:
            if (!parse_count(optarg, &cfg->fleet_cap) || cfg->fleet_cap < 1)
                return fprintf(stderr, "bench: --fleet-cap: want a positive count\n"), -1;
            break;
        case 25:
            cfg->fleet_instance = optarg;
            break;
        case 'q':
            cfg->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc)
        cfg->url = argv[optind++];
    if (optind < argc)
        return fprintf(stderr, "bench: unexpected argument '%s'\n", argv[optind]), -1;
    if (have_n && !have_d)
        cfg->seconds = 1e9; /* -n alone: run until the count */
    /* The HTTP client's own flags mean nothing to the other targets: say so. */
    const char *http_only = cfg->unix_socket != NULL ? "--unix-socket"
                            : cfg->proxy != NULL     ? "--proxy"
                            : cfg->cert != NULL      ? "--cert"
                            : cfg->compressed        ? "--compressed"
                            : cfg->http_version == TP_HTTP_VERSION_2   ? "--http2"
                            : cfg->http_version == TP_HTTP_VERSION_1_1 ? "--http1.1"
                                                                       : NULL;
    bool http = cfg->url != NULL &&
                (strncmp(cfg->url, "http://", 7) == 0 || strncmp(cfg->url, "https://", 8) == 0);
    if (http_only != NULL && !http)
        return fprintf(stderr, "bench: %s: only with an http:// or https:// URL\n", http_only),
               -1;
    if (cfg->fleet == NULL && (cfg->fleet_name != NULL || cfg->fleet_cap > 0 ||
                               cfg->fleet_instance != NULL))
        return fprintf(stderr, "bench: --fleet-name, --fleet-cap, --fleet-instance: only with "
                               "--fleet redis://HOST:PORT\n"),
               -1;
    if (cfg->fleet != NULL && (cfg->fleet_name == NULL || cfg->fleet_cap < 1))
        return fprintf(stderr, "bench: --fleet: give the budget's --fleet-name and "
                               "--fleet-cap too\n"),
               -1;
    return 0;
}
