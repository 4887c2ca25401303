/* blocking.c: the blocking call, as curl does it: tp_http_client_do() submits the request
 * to a private engine and runs that engine's loop on the caller's thread until the
 * request is done. So there is one exchange (the engine's state machine, engine_req*.c)
 * with one retry rule, one mapping of timeouts to errors, one set of trace events, and
 * the blocking call has whatever the engine has: opens that never block on DNS, early
 * answers, Expect: 100-continue, redirects, streamed bodies.
 *
 * Private engines are kept in a stack on the client, so a thread's second call reuses the
 * epoll set (and the registrations of the connections) of its first: a call takes one,
 * or makes one when all are busy, and gives it back when done. An engine inherited
 * through fork() belongs to the parent's epoll set and is never used in the child. */
#include <string.h>

#include "engine.h"

/* What the private engine's callback hands the waiting caller. */
typedef struct blocking_wait {
    bool done;
    tp_err rc;
    tp_http_response *r;
    tp_errinfo info;
} blocking_wait;

static void on_done(void *ud, tp_err rc, tp_http_response *r, const tp_errinfo *err)
{
    blocking_wait *w = ud;
    w->done = true;
    w->rc = rc;
    w->r = r;
    if (rc != TP_OK && err != NULL)
        w->info = *err;
}

/* The caller's engine for one call: an idle one of the client's, or a new one. */
static tp_err take_engine(tp_http_client *c, tp_http_engine **out, tp_errinfo *err)
{
    unsigned gen = atomic_load(&tp__fork_generation);
    tp_http_engine *e;
    for (;;) {
        tp__mutex_lock(&c->engines_mu);
        if ((e = c->idle_engines) != NULL)
            c->idle_engines = e->next_idle;
        tp__mutex_unlock(&c->engines_mu);
        if (e == NULL || e->fork_gen == gen)
            break;
        tp__eng_abandon(e); /* the parent's: its epoll set is shared with the parent */
    }
    if (e == NULL) {
        tp_err rc = tp_http_engine_create(c, &e, err);
        if (rc != TP_OK)
            return rc;
    }
    e->next_idle = NULL;
    tp__eng_adopt(e);
    *out = e;
    return TP_OK;
}

/* Back on the client's stack once the call is over. */
static void give_engine(tp_http_client *c, tp_http_engine *e)
{
    /* A result the pool posted for a request that ended while waiting for it (a zombie)
     * is given back now, not whenever this engine runs again. */
    for (int i = 0; i < 100 && e->zombies > 0; i++)
        tp_http_engine_poll(e, TP_NSEC_PER_MSEC);
    tp__mutex_lock(&c->engines_mu);
    e->next_idle = c->idle_engines;
    c->idle_engines = e;
    tp__mutex_unlock(&c->engines_mu);
}

void tp__http_engines_free(tp_http_client *c)
{
    while (c->idle_engines != NULL) {
        tp_http_engine *e = c->idle_engines;
        c->idle_engines = e->next_idle;
        if (e->fork_gen == atomic_load(&tp__fork_generation))
            tp_http_engine_destroy(e);
        else
            tp__eng_abandon(e);
    }
}

tp_err tp_http_client_do(tp_http_client *c, const tp_http_request *req, tp_http_response **out,
                         tp_errinfo *err)
{
    if (c == NULL || req == NULL || out == NULL || req->url == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "client, request, url and out are required");
    *out = NULL;
    if (req->on_body != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "on_body: the engine's; the blocking call streams with "
                              "TP_HTTP_STREAM and tp_http_response_read()");
    if (tp__http_h2_possible(c, req->url)) {
        tp__http_url u;
        tp_err rc = tp__http_url_parse(req->url, &u, err);
        if (rc != TP_OK)
            return rc;
        if (tp__http_h2_route(c, req, &u, &rc, err)) {
            bool fallback;
            rc = tp__http_h2_do(c, req, &u, out, &fallback, err);
            if (!fallback)
                return rc;
        } else if (rc != TP_OK) {
            return rc;
        }
    }
    tp_http_engine *e = NULL;
    tp_err rc = take_engine(c, &e, err);
    if (rc != TP_OK)
        return rc;
    blocking_wait w = {0};
    /* HTTP/2 was decided above (and run there): what comes here is HTTP/1.1's. */
    tp__eng_submit_opts opts = {
        .borrow_body = true, .handover = true, .blocking = true, .http1 = true};
    rc = tp__eng_submit(e, req, &opts, on_done, &w, NULL, err);
    if (rc == TP_OK) {
        /* The engine's timers bound each phase (and the whole request, when it has a
         * timeout), as they bound every engine request. */
        while (!w.done)
            tp_http_engine_poll(e, TP_DURATION_INFINITE);
        rc = w.rc;
        if (rc == TP_OK) {
            tp_errinfo_clear(err);
            *out = w.r;
        } else if (err != NULL) {
            *err = w.info;
        }
    }
    give_engine(c, e);
    return rc;
}

tp_err tp_http_get(tp_http_client *c, const char *url, tp_http_response **out, tp_errinfo *err)
{
    tp_http_request req = {.method = "GET", .url = url, .timeout = TP_DURATION_DEFAULT};
    return tp_http_client_do(c, &req, out, err);
}
