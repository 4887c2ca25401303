/* engine_req_redirect.c: the engine following a redirect (max_redirects): the request
 * keeps its id (so a cancel still reaches it), its deadline and its callback; its URL,
 * method, head, body and key become the next hop's (redirect.c decides them), and it
 * queues for a connection again. The 3xx response is freed; its connection went back
 * to the pool when it completed. */
#include <stdio.h>
#include <string.h>

#include "engine.h"

tp_err tp__er_hop_init(eng_req *rq, const tp_http_request *req, const char *method,
                       tp_errinfo *err)
{
    tp__http_url u;
    tp_err rc = tp__http_url_parse(req->url, &u, err);
    if (rc != TP_OK)
        return rc;
    rq->hop = tp__calloc(1, sizeof *rq->hop);
    if (rq->hop == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the redirect state");
    rc = tp__http_hop_init(rq->hop, req, method, &u, err);
    if (rc != TP_OK) {
        tp__free(rq->hop);
        rq->hop = NULL;
        return rc;
    }
    rq->hop->body = rq->body; /* the engine's copy, alive as long as rq */
    return TP_OK;
}

/* rq takes on the hop's destination and head. */
static tp_err retarget(eng_req *rq, tp_errinfo *err)
{
    tp_http_client *c = rq->e->c;
    tp__http_hop *hop = rq->hop;
    if (hop->body == NULL && rq->body != NULL) { /* the hop dropped the body */
        if (!rq->body_borrowed)
            tp__free(rq->body);
        rq->body = NULL;
        rq->body_len = 0;
    }
    char *m = tp__strdup(hop->method);
    if (m == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "redirect: copying the method");
    tp__free(rq->method);
    rq->method = m;
    tp_http_request req;
    char url[2400];
    tp_http_request base = {.flags = rq->flags};
    tp__http_hop_request(hop, &base, url, sizeof url, &req);
    const tp__http_url *u = &hop->url;
    memcpy(rq->host, u->host, sizeof rq->host);
    rq->port = u->port;
    rq->tls = u->tls;
    rq->keylen = tp__http_key(c, u, rq->key, sizeof rq->key);
    if (rq->keylen == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "redirect: host too long");
    tp__buf_reset(&rq->head);
    return tp__http_build_head(c, &req, rq->method, u, &rq->head, err);
}

bool tp__er_redirect(eng_req *rq)
{
    tp_http_client *c = rq->e->c;
    tp_http_response *r = rq->r;
    int status = r->parse.status;
    const char *loc = tp_http_response_header(r, "Location");
    /* A body source cannot be produced again: its 3xx is the answer. */
    if (!tp__http_is_redirect(status) || loc == NULL || rq->source != NULL) {
        r->info.redirects = rq->hop->redirects;
        return false;
    }
    char location[2048];
    snprintf(location, sizeof location, "%s", loc);
    tp_errinfo info;
    tp_err rc = tp__http_hop_next(rq->hop, status, location, c->o.max_redirects, &info);
    if (rc == TP_OK)
        rc = retarget(rq, &info);
    tp_http_response_free(r);
    rq->r = NULL;
    if (rc == TP_OK && !tp__er_new_response(rq))
        rc = tp_errinfo_set(&info, TP_ENOMEM, 0, "allocating the response");
    if (rc != TP_OK) {
        tp__er_then_finish(rq, rc, &info);
        return true;
    }
    rq->attempt = 0;
    rq->sent = 0;
    rq->phase_deadline = TP_DURATION_INFINITE;
    tp__eng_timer_clear(rq->e, rq);
    tp__er_then_acquire(rq);
    return true;
}
