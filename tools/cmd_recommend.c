/* cmd_recommend.c: `tidepool recommend`: per-key pool settings from queueing theory
 * (tidepool/sizing.h), with the reasoning in a few lines. The load comes from the
 * command line, or is measured from a running pool's Prometheus endpoint (two scrapes a
 * second apart); the server's keep-alive can be probed with one request. Both only talk
 * to loopback addresses: recommend is a local diagnostic, not a scanner. With --measure
 * the destination's live sockets calibrate the seeds' formula (recommend_measure.c). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidepool/sizing.h"
#include "tidepool/tidepool.h"

#include "cli.h"
#include "recommend.h"
#include "recommend_parse.h"

#define PORT_RANGE_FILE "/proc/sys/net/ipv4/ip_local_port_range"

static void usage(FILE *f)
{
    fprintf(f, "usage: tidepool recommend --rate R --hold-ms H [options]\n"
               "       tidepool recommend --from-metrics http://127.0.0.1:PORT/metrics [options]\n"
               "  --rate R                acquires (requests) per second to one destination\n"
               "  --hold-ms H             mean time a connection is held per request, in ms\n"
               "  --from-metrics URL      measure rate, hold time and closes from a running\n"
               "                          pool's Prometheus endpoint (loopback, plain HTTP)\n"
               "  --label NAME=VALUE      with --from-metrics: only series with this label,\n"
               "                          e.g. key=http://10.0.0.5:8080 (default: all summed)\n"
               "  --sample D              time between the two scrapes (default 1s)\n"
               "  --target-wait-prob P    P(an acquire waits) at most P (default 0.05)\n"
               "  --target-p99-ms T       p99 of the acquire wait at most T ms\n"
               "  --server-max-conns N    connections the server accepts from this client\n"
               "  --keepalive-s K         the server's keep-alive timeout, seconds\n"
               "  --url URL               probe the keep-alive with one request (loopback)\n"
               "  --port-range LO-HI      ephemeral ports (default: " PORT_RANGE_FILE ")\n"
               "  --close-rate R          connections the client closes per second\n"
               "  --time-wait-s S         TIME_WAIT length (default 60; ~1 with tcp_tw_reuse)\n"
               "  --measure               with --from-metrics: also read the destination's live\n"
               "                          sockets (RTT, retransmissions, as doctor does) and\n"
               "                          size by N = min(ceil(QPS x RTT x alpha), ports /\n"
               "                          destinations), alpha = hold / RTT, beside Erlang C\n"
               "  --dest IP:PORT          with --measure: the destination (default: the busiest\n"
               "                          key of the metrics)\n"
               "  --pid PID               with --measure: only that process's sockets\n"
               "  --json                  one JSON object\n");
}

/* A finite number in [lo, hi], the whole argument. */
static bool num_arg(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, rec_cfg *c)
{
    static const struct option longs[] = {{"rate", required_argument, NULL, 'r'},
                                          {"hold-ms", required_argument, NULL, 'H'},
                                          {"from-metrics", required_argument, NULL, 'm'},
                                          {"label", required_argument, NULL, 'l'},
                                          {"sample", required_argument, NULL, 's'},
                                          {"target-wait-prob", required_argument, NULL, 'p'},
                                          {"target-p99-ms", required_argument, NULL, 't'},
                                          {"server-max-conns", required_argument, NULL, 'n'},
                                          {"keepalive-s", required_argument, NULL, 'k'},
                                          {"url", required_argument, NULL, 'u'},
                                          {"port-range", required_argument, NULL, 'P'},
                                          {"close-rate", required_argument, NULL, 'c'},
                                          {"time-wait-s", required_argument, NULL, 'w'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"measure", no_argument, NULL, 'M'},
                                          {"dest", required_argument, NULL, 'D'},
                                          {"pid", required_argument, NULL, 'i'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    tp_sizing_input_init(&c->in);
    c->sample_s = 1;
    double v = 0;
    int64_t n;
    int o;
    optind = 1;
    int li = -1;
    while ((o = getopt_long(argc, argv, "h", longs, &li)) != -1) {
        bool ok = true;
        switch (o) {
        case 'r':
            ok = c->have_rate = num_arg(optarg, 0, 1e12, &c->in.rate);
            break;
        case 'H':
            ok = c->have_hold = num_arg(optarg, 0, 1e9, &v);
            c->in.hold_s = v / 1e3;
            break;
        case 'm':
            c->metrics_url = optarg;
            break;
        case 'l':
            ok = rp_label_pair(optarg, c->label, sizeof c->label);
            break;
        case 's':
            ok = parse_duration_s(optarg, &c->sample_s) && c->sample_s > 0;
            break;
        case 'p':
            ok = num_arg(optarg, 0, 1, &c->in.target_wait_prob);
            break;
        case 't':
            ok = num_arg(optarg, 0, 1e9, &v);
            c->in.target_wait_s = v / 1e3;
            break;
        case 'n':
            ok = parse_count(optarg, &n) && n >= 1;
            c->in.server_max_conns = n;
            break;
        case 'k':
            ok = c->have_keepalive = num_arg(optarg, 0, 1e9, &c->in.keepalive_s);
            break;
        case 'u':
            c->probe_url = optarg;
            break;
        case 'P':
            ok = c->have_ports = rp_port_range(optarg, &c->port_lo, &c->port_hi);
            break;
        case 'c':
            ok = c->have_close = num_arg(optarg, 0, 1e9, &c->in.close_rate);
            break;
        case 'w':
            ok = num_arg(optarg, 0, 1e6, &c->in.time_wait_s);
            break;
        case 'j':
            c->json = true;
            break;
        case 'M':
            c->m.on = true;
            break;
        case 'D':
            ok = c->m.have_dest = tp_diag_endpoint_parse(optarg, &c->m.dest) == TP_OK;
            break;
        case 'i':
            ok = parse_count(optarg, &n) && n >= 1 && n <= 0x7fffffff;
            c->m.pid = (int)n;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "recommend: --%s: bad value '%s'\n", li >= 0 ? longs[li].name : "?",
                    optarg);
            return -1;
        }
    }
    if (optind < argc)
        return fprintf(stderr, "recommend: unexpected argument '%s'\n", argv[optind]), -1;
    if (c->m.on && c->metrics_url == NULL)
        return fprintf(stderr, "recommend: --measure needs --from-metrics URL (the rate and "
                               "hold time of the pool)\n"),
               -1;
    if (!c->m.on && (c->m.have_dest || c->m.pid != 0))
        return fprintf(stderr, "recommend: --dest and --pid go with --measure\n"), -1;
    if (c->metrics_url == NULL && (!c->have_rate || !c->have_hold))
        return fprintf(stderr, "recommend: give --rate and --hold-ms, or --from-metrics URL\n"), -1;
    const char *urls[2] = {c->metrics_url, c->probe_url};
    for (int i = 0; i < 2; i++)
        if (urls[i] != NULL && !rp_loopback_url(urls[i]))
            return fprintf(stderr,
                           "recommend: %s: only http:// URLs on a loopback address "
                           "(127.0.0.0/8, [::1], localhost)\n",
                           urls[i]),
                   -1;
    return 0;
}

/* ports: the range from --port-range, else the kernel's, else Linux's default. */
static void ports(rec_cfg *c)
{
    if (!c->have_ports) {
        char line[64] = "";
        FILE *f = fopen(PORT_RANGE_FILE, "r");
        if (f != NULL) {
            if (fgets(line, sizeof line, f) == NULL)
                line[0] = '\0';
            fclose(f);
        }
        if (!rp_port_range(line, &c->port_lo, &c->port_hi)) {
            c->port_lo = 32768;
            c->port_hi = 60999;
            rec_note(c, "%s unreadable: assumed Linux's default ports 32768-60999",
                     PORT_RANGE_FILE);
        }
    }
    c->in.port_range = c->port_hi - c->port_lo + 1;
}

int cmd_recommend(int argc, char **argv)
{
    rec_cfg c = {0};
    if (parse_args(argc, argv, &c) != 0)
        return 2;
    if (c.metrics_url != NULL || c.probe_url != NULL) {
        tp_http_client_options o;
        tp_http_client_options_init(&o);
        o.request_timeout = 5 * TP_NSEC_PER_SEC;
        tp_http_client *cl;
        tp_errinfo e;
        tp_err rc = tp_http_client_create(&o, &cl, &e);
        if (rc != TP_OK)
            return fprintf(stderr, "recommend: %s: %s\n", tp_err_name(rc), e.msg), 1;
        bool ok = (c.metrics_url == NULL || rec_measure(cl, &c)) &&
                  (!c.m.on || rec_measure_sockets(cl, &c)) &&
                  (c.probe_url == NULL || rec_probe(cl, &c));
        tp_http_client_destroy(cl);
        if (!ok)
            return 1;
    }
    ports(&c);
    tp_sizing_result r;
    tp_errinfo e;
    tp_err rc = tp_sizing_recommend(&c.in, &r, &e);
    if (rc != TP_OK)
        return fprintf(stderr, "recommend: %s\n", e.msg), rc == TP_EINVAL ? 2 : 1;
    if (c.m.on)
        rec_measure_compare(&c, &r);
    if (c.json)
        rec_print_json(&c, &r);
    else
        rec_print_text(&c, &r);
    return 0;
}
