/* recommend_fetch.c: the inputs `tidepool recommend` reads over HTTP (see recommend.h):
 * a running pool's Prometheus counters, scraped twice to turn totals into rates, and the
 * server's advertised keep-alive. Only through the public HTTP client. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tidepool/tidepool.h"

#include "recommend.h"
#include "recommend_parse.h"

void rec_note(rec_cfg *c, const char *fmt, ...)
{
    if (c->nnotes >= REC_MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->notes[c->nnotes++], sizeof c->notes[0], fmt, ap);
    va_end(ap);
}

/* get: one GET; on success *out is the response (the caller frees it). */
static bool get(tp_http_client *cl, const char *url, tp_http_response **out)
{
    tp_errinfo e;
    tp_err rc = tp_http_get(cl, url, out, &e);
    if (rc != TP_OK) {
        fprintf(stderr, "recommend: GET %s: %s: %s\n", url, tp_err_name(rc), e.msg);
        return false;
    }
    if (tp_http_response_status(*out) != 200) {
        fprintf(stderr, "recommend: GET %s: HTTP status %d\n", url, tp_http_response_status(*out));
        tp_http_response_free(*out);
        return false;
    }
    return true;
}

/* The counters recommend reads from one scrape. */
typedef struct scrape {
    double acquires, hold_sum, hold_count, closes;
    int nseries;
    bool have_closes;
    int64_t at;
} scrape;

/* scrape_once: one GET of the metrics URL, summed over the series --label selects (all
 * by default). Prints why and returns false when the request or the counters are missing. */
static bool scrape_once(tp_http_client *cl, const rec_cfg *c, scrape *s)
{
    /* Closes where the server hung up first leave no TIME_WAIT on this side. */
    static const char *const passive[] = {"reason=\"check_failed\"", "reason=\"broken\"", NULL};
    tp_http_response *r;
    if (!get(cl, c->metrics_url, &r))
        return false;
    s->at = tp_clock_now();
    const char *body = tp_http_response_body(r, NULL);
    const char *want = c->label[0] ? c->label : NULL;
    bool ok = rp_prom_sum(body, "tidepool_acquires_total", want, NULL, &s->acquires, &s->nseries) &&
              rp_prom_sum(body, "tidepool_hold_seconds_sum", want, NULL, &s->hold_sum, NULL) &&
              rp_prom_sum(body, "tidepool_hold_seconds_count", want, NULL, &s->hold_count, NULL);
    s->have_closes = rp_prom_sum(body, "tidepool_closes_total", want, passive, &s->closes, NULL);
    tp_http_response_free(r);
    if (!ok)
        fprintf(stderr,
                "recommend: %s has no tidepool_acquires_total and tidepool_hold_seconds "
                "samples%s%s\n",
                c->metrics_url, want ? " with " : "", want ? want : "");
    return ok;
}

/* rec_measure: rate, hold time and client closes from two scrapes sample_s apart; values
 * given on the command line win. */
bool rec_measure(tp_http_client *cl, rec_cfg *c)
{
    scrape a, b;
    if (!scrape_once(cl, c, &a))
        return false;
    struct timespec ts = {(time_t)c->sample_s, (long)(fmod(c->sample_s, 1.0) * 1e9)};
    nanosleep(&ts, NULL);
    if (!scrape_once(cl, c, &b))
        return false;
    double dt = (double)(b.at - a.at) / 1e9, dn = b.acquires - a.acquires;
    double dh = b.hold_count - a.hold_count;
    if (!(dt > 0) || !(dn > 0)) {
        fprintf(stderr,
                "recommend: no acquires during the %.2f s sample: is the pool in use? "
                "(or give --rate and --hold-ms)\n",
                dt);
        return false;
    }
    if (!c->have_rate)
        c->in.rate = dn / dt;
    if (!c->have_hold && !(dh > 0) && !(b.hold_count > 0)) {
        fprintf(stderr, "recommend: no lease was released yet, so no hold time is known "
                        "(give --hold-ms)\n");
        return false;
    }
    /* The hold time of this sample; when no lease ended during it (holds longer than the
     * sample), the mean since the pool started. */
    if (!c->have_hold)
        c->in.hold_s = dh > 0 ? (b.hold_sum - a.hold_sum) / dh : b.hold_sum / b.hold_count;
    if (!c->have_close && a.have_closes && b.have_closes)
        c->in.close_rate = fmax(0, (b.closes - a.closes) / dt);
    rec_note(c,
             "measured from %s over %.2f s: %.4g acquires/s, mean hold %.4g ms, %.4g client "
             "closes/s%s",
             c->metrics_url, dt, dn / dt, c->in.hold_s * 1e3, c->in.close_rate,
             c->have_rate || c->have_hold ? " (command-line values kept)" : "");
    if (a.nseries > 1 && !c->label[0])
        rec_note(c,
                 "%d keys saw acquires and their sum was sized; size one with "
                 "--label key=...",
                 a.nseries);
    return true;
}

/* rec_probe: one request to the server; its Keep-Alive: timeout=N sets the keep-alive. */
bool rec_probe(tp_http_client *cl, rec_cfg *c)
{
    tp_http_response *r;
    tp_errinfo e;
    tp_err rc = tp_http_get(cl, c->probe_url, &r, &e);
    if (rc != TP_OK)
        return fprintf(stderr, "recommend: GET %s: %s: %s\n", c->probe_url, tp_err_name(rc), e.msg),
               false;
    const char *ka = tp_http_response_header(r, "Keep-Alive");
    const char *conn = tp_http_response_header(r, "Connection");
    double k;
    if (c->have_keepalive)
        rec_note(c, "probed %s: --keepalive-s %g kept", c->probe_url, c->in.keepalive_s);
    else if (ka != NULL && rp_keepalive_timeout(ka, &k)) {
        c->in.keepalive_s = k;
        rec_note(c, "probed %s: Keep-Alive: %s", c->probe_url, ka);
    } else if (conn != NULL && strcasecmp(conn, "close") == 0)
        rec_note(c,
                 "probed %s: the server sent Connection: close: it does not keep connections "
                 "alive, so every request dials (and the port budget matters)",
                 c->probe_url);
    else
        rec_note(c,
                 "probed %s: no Keep-Alive timeout advertised (nginx sends one only with a "
                 "second keepalive_timeout parameter)",
                 c->probe_url);
    tp_http_response_free(r);
    return true;
}
