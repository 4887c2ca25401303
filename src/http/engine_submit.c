/* engine_submit.c: the event engine's entry points for any thread: submitting a request
 * (parse the URL and serialise the head, or copy both from the memo of the last
 * header-less request; queue it in the inbox and wake the loop) and canceling one. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ---- submission ---------------------------------------------------------------------- */

/* Only a request whose head depends on nothing but its method, URL and body length (no
 * headers of its own, no body source, no Expect) is remembered. */
static bool memo_worthy(const tp_http_request *req)
{
    return req->nheaders == 0 && req->body_source == NULL &&
           (req->flags & TP_HTTP_EXPECT_CONTINUE) == 0;
}

static bool memo_matches(tp_http_engine *e, const tp_http_request *req, const char *method)
{
    return memo_worthy(req) && e->memo.url != NULL && req->body_len == e->memo.body_len &&
           strcmp(e->memo.url, req->url) == 0 && strcmp(e->memo.method, method) == 0;
}

/* Remembers a header-less request's parsed destination and head. Lock held. */
static void memo_store(tp_http_engine *e, const tp_http_request *req, const char *method,
                       const eng_req *rq)
{
    char *m = tp__strdup(method), *u = tp__strdup(req->url);
    if (m == NULL || u == NULL) {
        tp__free(m);
        tp__free(u);
        return;
    }
    tp__free(e->memo.method);
    tp__free(e->memo.url);
    e->memo.method = m;
    e->memo.url = u;
    e->memo.body_len = req->body_len;
    memcpy(e->memo.host, rq->host, sizeof rq->host);
    e->memo.port = rq->port;
    e->memo.tls = rq->tls;
    memcpy(e->memo.key, rq->key, rq->keylen);
    e->memo.keylen = rq->keylen;
    tp__buf_reset(&e->memo.head);
    if (tp__buf_append(&e->memo.head, rq->head.data, rq->head.len) != TP_OK) {
        tp__free(e->memo.url);
        e->memo.url = NULL;
    }
}

/* Parses the URL and serialises the head into rq (or copies them from the memo). */
static tp_err prepare(tp_http_engine *e, const tp_http_request *req, const char *method,
                      eng_req *rq, tp_errinfo *err)
{
    tp__mutex_lock(&e->mu);
    if (memo_matches(e, req, method)) {
        memcpy(rq->host, e->memo.host, sizeof rq->host);
        rq->port = e->memo.port;
        rq->tls = e->memo.tls;
        memcpy(rq->key, e->memo.key, e->memo.keylen);
        rq->keylen = e->memo.keylen;
        tp_err rc = tp__buf_append(&rq->head, e->memo.head.data, e->memo.head.len);
        tp__mutex_unlock(&e->mu);
        return rc == TP_OK ? TP_OK : tp_errinfo_set(err, rc, 0, "copying the request head");
    }
    tp__mutex_unlock(&e->mu);
    tp__http_url u;
    tp_err rc = tp__http_url_parse(req->url, &u, err);
    if (rc != TP_OK)
        return rc;
    memcpy(rq->host, u.host, sizeof rq->host);
    rq->port = u.port;
    rq->tls = u.tls;
    rq->keylen = tp__http_key(e->c, &u, rq->key, sizeof rq->key);
    if (rq->keylen == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "url: host too long");
    rc = tp__http_build_head(e->c, req, method, &u, &rq->head, err);
    if (rc == TP_OK && memo_worthy(req)) {
        tp__mutex_lock(&e->mu);
        memo_store(e, req, method, rq);
        tp__mutex_unlock(&e->mu);
    }
    return rc;
}

/* Whether rq goes over HTTP/2 (the client decides: h2_client.c); if so, its fields. The
 * blocking call runs HTTP/2 itself and submits here only what it sends over HTTP/1.1. */
static tp_err route(tp_http_client *c, const tp_http_request *req, eng_req *rq, tp_errinfo *err)
{
    tp__http_url u;
    tp_err rc = tp__http_url_parse(req->url, &u, err);
    if (rc == TP_OK && tp__http_h2_route(c, req, &u, &rc, err))
        rc = tp__er_h2_prepare(rq, err);
    return rc;
}

tp_err tp_http_engine_submit(tp_http_engine *e, const tp_http_request *req, tp_http_done_fn cb,
                             void *ud, uint64_t *id, tp_errinfo *err)
{
    if (req != NULL && (req->flags & TP_HTTP_STREAM))
        return tp_errinfo_set(err, TP_EINVAL, 0, "TP_HTTP_STREAM is not supported by the engine");
    return tp__eng_submit(e, req, NULL, cb, ud, id, err);
}

tp_err tp__eng_submit(tp_http_engine *e, const tp_http_request *req,
                      const tp__eng_submit_opts *opts, tp_http_done_fn cb, void *ud, uint64_t *id,
                      tp_errinfo *err)
{
    static const tp__eng_submit_opts none = {0};
    if (opts == NULL)
        opts = &none;
    if (e == NULL || req == NULL || cb == NULL || req->url == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "engine, request, url and cb are required");
    if (req->body_len > 0 && req->body == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "body: NULL with body_len %zu", req->body_len);
    if (req->body_source != NULL && req->body_len > 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "body and body_source: one or the other");
    tp_http_client *c = e->c;
    eng_req *rq = tp__calloc(1, sizeof *rq);
    if (rq == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the request");
    rq->e = e;
    rq->cb = cb;
    rq->ud = ud;
    rq->flags = req->flags;
    rq->source = req->body_source;
    rq->source_ud = req->body_source_ud;
    rq->source_len = req->body_source_len;
    rq->sink = req->on_body;
    rq->sink_ud = req->on_body_ud;
    rq->decode = tp__http_offers_codings(c, req);
    rq->handover = opts->handover && (req->flags & TP_HTTP_STREAM) != 0;
    rq->blocking = opts->blocking;
    tp__timer_init(&rq->timer);
    tp__buf_init(&rq->head);
    const char *method = req->method != NULL ? req->method : "GET";
    rq->method = tp__strdup(method);
    tp_err rc = rq->method == NULL ? tp_errinfo_set(err, TP_ENOMEM, 0, "copying the method")
                                   : prepare(e, req, method, rq, err);
    if (rc == TP_OK && req->body_len > 0 && opts->borrow_body) {
        rq->body = (char *)req->body; /* the blocking caller waits for the request */
        rq->body_borrowed = true;
        rq->body_len = req->body_len;
    } else if (rc == TP_OK && req->body_len > 0) {
        rq->body = tp__malloc(req->body_len);
        if (rq->body == NULL)
            rc = tp_errinfo_set(err, TP_ENOMEM, 0, "copying the body");
        else
            memcpy(rq->body, req->body, req->body_len);
        rq->body_len = req->body_len;
    }
    if (rc == TP_OK && c->o.max_redirects > 0)
        rc = tp__er_hop_init(rq, req, method, err);
    if (rc == TP_OK && !opts->http1 && tp__http_h2_possible(c, req->url))
        rc = route(c, req, rq, err);
    int64_t timeout = req->timeout == TP_DURATION_DEFAULT ? c->o.request_timeout : req->timeout;
    if (rc == TP_OK && timeout <= 0)
        rc = tp_errinfo_set(err, TP_EINVAL, 0, "timeout: must be positive");
    if (rc != TP_OK) {
        tp__er_free(rq);
        return rc;
    }
    rq->start = tp_clock_now();
    rq->deadline = tp__saturating_add(rq->start, timeout);
    rq->phase_deadline = TP_DURATION_INFINITE;
    tp__mutex_lock(&e->mu);
    rq->id = e->next_id++;
    if (id != NULL)
        *id = rq->id;
    if (e->inbox_tail != NULL)
        e->inbox_tail->next_q = rq;
    else
        e->inbox = rq;
    e->inbox_tail = rq;
    atomic_fetch_add(&e->pending, 1);
    tp__eng_wake_locked(e);
    tp__mutex_unlock(&e->mu);
    return TP_OK;
}

tp_err tp_http_engine_cancel(tp_http_engine *e, uint64_t id)
{
    if (e == NULL || id == 0)
        return TP_EINVAL;
    tp_err rc = TP_ESTATE;
    tp__mutex_lock(&e->mu);
    for (eng_req *rq = e->inbox; rq != NULL; rq = rq->next_q)
        if (rq->id == id) {
            rq->cancel = true;
            rc = TP_OK;
        }
    /* Started requests are only known to the loop: leave a note it will read. */
    if (rc != TP_OK && id < e->next_id) {
        cancel_note *n = tp__malloc(sizeof *n);
        if (n == NULL) {
            tp__mutex_unlock(&e->mu);
            return TP_ENOMEM;
        }
        n->id = id;
        n->resume = false;
        n->next = e->cancels;
        e->cancels = n;
        rc = TP_OK;
        tp__eng_wake_locked(e);
    }
    tp__mutex_unlock(&e->mu);
    return rc;
}

tp_err tp_http_engine_resume(tp_http_engine *e, uint64_t id)
{
    if (e == NULL || id == 0)
        return TP_EINVAL;
    tp__mutex_lock(&e->mu);
    if (id >= e->next_id) {
        tp__mutex_unlock(&e->mu);
        return TP_EINVAL;
    }
    cancel_note *n = tp__malloc(sizeof *n);
    if (n == NULL) {
        tp__mutex_unlock(&e->mu);
        return TP_ENOMEM;
    }
    n->id = id;
    n->resume = true;
    n->next = e->cancels;
    e->cancels = n;
    tp__eng_wake_locked(e);
    tp__mutex_unlock(&e->mu);
    return TP_OK;
}
