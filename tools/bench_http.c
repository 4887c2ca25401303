/* bench_http.c: the HTTP side of `tidepool bench`: one event engine per worker thread,
 * keeping its share of requests in flight (closed loop) or starting them on a schedule
 * (open loop, --rate), and the shared bookkeeping of every driver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

atomic_bool bench_stop;
atomic_llong bench_finished;
atomic_llong bench_h2_responses;
static atomic_llong issued;

bool bench_may_issue(const bench_cfg *cfg)
{
    if (atomic_load_explicit(&bench_stop, memory_order_relaxed))
        return false;
    return cfg->total <= 0 || atomic_fetch_add(&issued, 1) < cfg->total;
}

void bench_record(worker *w, tp_err rc, int64_t us, bool ok)
{
    pthread_mutex_lock(&w->mu);
    w->requests++;
    if (ok) {
        latency_add(&w->interval, us);
        if (w->cfg->plot != NULL)
            latency_add(&w->plot_interval, us);
    } else {
        w->errors++;
    }
    if (rc != TP_OK)
        w->err_by_code[(-rc) & 31]++;
    pthread_mutex_unlock(&w->mu);
    if (ok)
        latency_add(&w->total, us);
}

static void submit_one(worker *w, int64_t start);

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    (void)err;
    inflight *f = ud;
    worker *w = f->w;
    int64_t now = tp_clock_now();
    int64_t us = (now - f->start) / 1000;
    bool ok = rc == TP_OK && tp_http_response_status(r) < 400;
    if (rc == TP_OK && !ok)
        w->bad_status++;
    if (rc == TP_OK) {
        tp_http_response_info info;
        tp_http_response_get_info(r, &info);
        if (info.protocol[0] == 'h' && info.protocol[1] == '2')
            atomic_fetch_add_explicit(&bench_h2_responses, 1, memory_order_relaxed);
        if (ok && w->cfg->heatmap != NULL)
            heatmap_add_sample(&w->heat, now, us, !info.reused && !info.retried);
    }
    tp_http_response_free(r);
    if (rc == TP_ECANCELED && atomic_load(&bench_stop)) {
        free(f); /* cut off by the end of the run: neither a result nor an error */
        return;
    }
    bench_record(w, rc, us, ok);
    /* Closed loop: the finished request's slot starts the next one. */
    if (w->rate == 0 && bench_may_issue(w->cfg)) {
        f->start = tp_clock_now();
        if (tp_http_engine_submit(w->engine, &w->req, on_done, f, NULL, NULL) != TP_OK)
            w->submit_errors++;
        return;
    }
    free(f);
}

static void submit_one(worker *w, int64_t start)
{
    inflight *f = malloc(sizeof *f);
    if (f == NULL) {
        w->submit_errors++;
        return;
    }
    f->w = w;
    f->start = start;
    tp_errinfo e;
    if (tp_http_engine_submit(w->engine, &w->req, on_done, f, NULL, &e) != TP_OK) {
        w->submit_errors++;
        free(f);
    }
}

/* One event loop: keeps its share of requests in flight (closed loop), or starts them
 * on a fixed schedule (open loop, --rate). */
void *bench_http_worker(void *arg)
{
    worker *w = arg;
    const bench_cfg *cfg = w->cfg;
    w->req = (tp_http_request){.method = cfg->method,
                               .url = cfg->url,
                               .header_names = cfg->hnames,
                               .header_values = cfg->hvalues,
                               .nheaders = cfg->nheaders,
                               .body = cfg->body,
                               .body_len = cfg->body != NULL ? strlen(cfg->body) : 0,
                               .timeout = cfg->timeout_s > 0 ? (int64_t)(cfg->timeout_s * 1e9)
                                                             : TP_DURATION_DEFAULT};
    if (w->rate == 0) {
        for (int64_t i = 0; i < w->concurrency && bench_may_issue(cfg); i++)
            submit_one(w, tp_clock_now());
    } else {
        int64_t step = (int64_t)(1e9 / w->rate);
        int64_t next = tp_clock_now();
        for (;;) {
            int64_t now = tp_clock_now();
            bool more = true;
            while (now >= next && (more = bench_may_issue(cfg))) {
                submit_one(w, next); /* latency counts from the scheduled start */
                next += step;
            }
            if (!more)
                break;
            tp_http_engine_poll(w->engine, TP__CLAMP_WAIT(next - tp_clock_now()));
        }
    }
    /* Let what is in flight finish, for at most 2 s after the end of the run; the rest is
     * cancelled when the engine goes. */
    int64_t stopped = -1;
    while (tp_http_engine_pending(w->engine) > 0) {
        if (atomic_load(&bench_stop) && stopped < 0)
            stopped = tp_clock_now();
        if (stopped >= 0 && tp_clock_now() - stopped > 2 * TP_NSEC_PER_SEC)
            break;
        tp_http_engine_poll(w->engine, 100 * TP_NSEC_PER_MSEC);
    }
    atomic_fetch_add(&bench_finished, 1);
    tp_http_engine_destroy(w->engine);
    w->engine = NULL;
    return NULL;
}
