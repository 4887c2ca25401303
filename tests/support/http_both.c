/* tests/support/http_both.c: see http_both.h. */
#include "http_both.h"

#include <stdio.h>
#include <string.h>

#include "test_util.h"

typedef struct run {
    bool done;
    hb_got *g;
} run;

static void take(hb_got *g, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    g->rc = rc;
    if (rc == TP_OK) {
        g->status = tp_http_response_status(r);
        const char *b = tp_http_response_body(r, &g->len);
        snprintf(g->body, sizeof g->body, "%.*s", (int)g->len, b != NULL ? b : "");
        tp_http_response_get_info(r, &g->info);
        g->info.content_encoding = NULL;
    } else {
        snprintf(g->msg, sizeof g->msg, "%s", err != NULL ? err->msg : "");
    }
    tp_http_response_free(r);
}

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    run *x = ud;
    x->done = true;
    take(x->g, rc, r, err);
}

hb_got hb_run(tp_http_client *c, bool engine, const tp_http_request *req)
{
    hb_got g = {0};
    tp_errinfo err = {0};
    if (!engine) {
        tp_http_response *r = NULL;
        tp_err rc = tp_http_client_do(c, req, &r, &err);
        take(&g, rc, r, &err);
        return g;
    }
    tp_http_engine *e = NULL;
    run x = {.g = &g};
    tp_err rc = tp_http_engine_create(c, &e, &err);
    if (rc == TP_OK)
        rc = tp_http_engine_submit(e, req, on_done, &x, NULL, &err);
    if (rc != TP_OK) {
        take(&g, rc, NULL, &err);
        tp_http_engine_destroy(e);
        return g;
    }
    int64_t minute = 60 * TP_NSEC_PER_SEC; /* the default or no timeout */
    int64_t bound = req->timeout > 0 && req->timeout < minute ? req->timeout : minute;
    int64_t t0 = tu_now_ns();
    while (!x.done && tu_now_ns() - t0 < bound + 10 * TP_NSEC_PER_SEC)
        (void)tp_http_engine_poll(e, 100 * TP_NSEC_PER_MSEC);
    bool in_time = x.done;
    tp_http_engine_destroy(e); /* a request still running ends here (TP_ECANCELED) */
    if (!in_time) {
        g.rc = TP_ETIMEDOUT;
        snprintf(g.msg, sizeof g.msg, "the engine did not finish the request in time");
    }
    return g;
}

hb_got hb_get(tp_http_client *c, bool engine, const char *url)
{
    tp_http_request req = {.url = url, .timeout = 5 * TP_NSEC_PER_SEC};
    return hb_run(c, engine, &req);
}
