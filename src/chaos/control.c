/* control.c: the fault proxy's control API, a small JSON API on loopback served by
 * libmicrohttpd's own thread: read the counters, put a fault in force or lift it, start
 * or stop a schedule, while the proxy runs. Each request goes through the public calls
 * (tp_chaos_set_fault, tp_chaos_schedule), so it is applied by the loop exactly as a
 * call from the program would be. Without libmicrohttpd, asking for it fails with
 * TP_ESTATE. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "chaos.h"

size_t tp_chaos_counters_json(const tp_chaos_counters *n, char *buf, size_t cap)
{
    int len = snprintf(
        buf, cap,
        "{\"tool\": \"tidepool-chaos\", \"seed\": %llu, \"accepted\": %llu, \"open\": %llu, "
        "\"upstream_failures\": %llu, \"bytes_up\": %llu, \"bytes_down\": %llu, "
        "\"bytes_dropped\": %llu, \"faulted\": %llu, \"resets\": %llu, \"limits\": %llu, "
        "\"half_opened\": %llu, \"refused\": %llu, \"steps\": %llu}",
        (unsigned long long)n->seed, (unsigned long long)n->accepted,
        (unsigned long long)n->open, (unsigned long long)n->upstream_failures,
        (unsigned long long)n->bytes_up, (unsigned long long)n->bytes_down,
        (unsigned long long)n->bytes_dropped, (unsigned long long)n->faulted,
        (unsigned long long)n->resets, (unsigned long long)n->limits,
        (unsigned long long)n->half_opened, (unsigned long long)n->refused,
        (unsigned long long)n->steps);
    return len < 0 ? 0 : (size_t)len;
}

uint16_t tp_chaos_control_port(const tp_chaos *c)
{
    return c != NULL ? c->control_port : 0;
}

#ifdef TIDEPOOL_HAVE_MICROHTTPD
#include <microhttpd.h>

#define TP__CONTROL_MAX_BODY (64 * 1024)

/* A request being read: its body so far. */
typedef struct control_req {
    char *body;
    size_t len;
    bool too_big;
} control_req;

static enum MHD_Result reply(struct MHD_Connection *mc, unsigned status, const char *json)
{
    size_t len = strlen(json);
    char *copy = tp__malloc(len + 1);
    if (copy == NULL)
        return MHD_NO;
    memcpy(copy, json, len + 1);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, copy,
                                                                                tp__free);
    if (r == NULL) {
        tp__free(copy);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(mc, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* An error as {"error": "..."} (the message's quotes and backslashes escaped). */
static enum MHD_Result reply_error(struct MHD_Connection *mc, unsigned status, const char *msg)
{
    char out[TP_ERRMSG_SIZE * 2 + 32];
    size_t o = (size_t)snprintf(out, sizeof out, "{\"error\": \"");
    for (const char *m = msg; *m != '\0' && o + 4 < sizeof out; m++) {
        if (*m == '"' || *m == '\\')
            out[o++] = '\\';
        out[o++] = (*m >= 0 && *m < 0x20) ? ' ' : *m;
    }
    snprintf(out + o, sizeof out - o, "\"}");
    return reply(mc, status, out);
}

static unsigned status_of(tp_err rc)
{
    return rc == TP_ESTATE ? MHD_HTTP_NOT_IMPLEMENTED
           : rc == TP_ENOMEM ? MHD_HTTP_INTERNAL_SERVER_ERROR
                             : MHD_HTTP_BAD_REQUEST;
}

static enum MHD_Result answer(struct tp_chaos *p, struct MHD_Connection *mc, const char *url,
                              const char *method, const char *body)
{
    tp_errinfo err;
    tp_err rc;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool del = strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;
    if (strcmp(url, "/counters") == 0 && get) {
        tp_chaos_counters n;
        tp_chaos_counters_read(p, &n);
        char json[1024];
        tp_chaos_counters_json(&n, json, sizeof json);
        return reply(mc, MHD_HTTP_OK, json);
    }
    if (strcmp(url, "/fault") == 0 && (put || post || del)) {
        tp_chaos_fault f;
        tp_chaos_fault_init(&f);
        rc = del ? TP_OK : tp_chaos_fault_parse(body, &f, &err);
        if (rc == TP_OK)
            rc = tp_chaos_set_fault(p, &f, &err);
        return rc == TP_OK ? reply(mc, MHD_HTTP_OK, "{\"ok\": true}")
                           : reply_error(mc, status_of(rc), err.msg);
    }
    if (strcmp(url, "/schedule") == 0 && (put || post || del)) {
        tp_chaos_step *steps = NULL;
        size_t n = 0;
        rc = del ? TP_OK : tp_chaos_schedule_parse(body, &steps, &n, &err);
        if (rc == TP_OK)
            rc = tp_chaos_schedule(p, steps, n, &err);
        tp__free(steps);
        return rc == TP_OK ? reply(mc, MHD_HTTP_OK, "{\"ok\": true}")
                           : reply_error(mc, status_of(rc), err.msg);
    }
    if (strcmp(url, "/counters") == 0 || strcmp(url, "/fault") == 0 ||
        strcmp(url, "/schedule") == 0)
        return reply_error(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here");
    return reply_error(mc, MHD_HTTP_NOT_FOUND, "not found: /counters, /fault or /schedule");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *mc, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls)
{
    (void)version;
    struct tp_chaos *p = cls;
    control_req *r = *req_cls;
    if (r == NULL) { /* the header: a place for the body */
        r = tp__calloc(1, sizeof *r);
        if (r == NULL)
            return MHD_NO;
        *req_cls = r;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!r->too_big && r->len + *upload_size <= TP__CONTROL_MAX_BODY) {
            char *grown = tp__realloc(r->body, r->len + *upload_size + 1);
            if (grown == NULL)
                return MHD_NO;
            memcpy(grown + r->len, upload, *upload_size);
            r->body = grown;
            r->len += *upload_size;
            r->body[r->len] = '\0';
        } else {
            r->too_big = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_big)
        return reply_error(mc, 413 /* content too large */, "a body of at most 64 KiB");
    return answer(p, mc, url, method, r->body != NULL ? r->body : "");
}

static void request_done(void *cls, struct MHD_Connection *mc, void **req_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)mc;
    (void)why;
    control_req *r = *req_cls;
    if (r != NULL) {
        tp__free(r->body);
        tp__free(r);
        *req_cls = NULL;
    }
}

tp_err tp__chaos_control_start(struct tp_chaos *p, tp_errinfo *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    const char *host = p->o.control_host != NULL ? p->o.control_host : "127.0.0.1";
    tp_err rc = tp__chaos_numeric_addr(host, p->o.control_port, &ss, &len, err);
    if (rc != TP_OK)
        return rc;
    bool loopback = ss.ss_family == AF_INET
                        ? (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127
                        : memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, &in6addr_loopback,
                                 sizeof in6addr_loopback) == 0;
    if (!loopback)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "control_host \"%.64s\" is not a loopback address: the control "
                              "API injects faults, it is for this host only", host);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    p->control = MHD_start_daemon(flags, p->o.control_port, NULL, NULL, handle, p,
                                  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                  MHD_OPTION_NOTIFY_COMPLETED, request_done, p,
                                  MHD_OPTION_CONNECTION_LIMIT, 16u,
                                  MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (p->control == NULL)
        return tp_errinfo_set(err, TP_ESYS, 0, "the control API on %s port %u could not start",
                              host, (unsigned)p->o.control_port);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info((struct MHD_Daemon *)p->control, MHD_DAEMON_INFO_BIND_PORT);
    p->control_port = info != NULL ? info->port : p->o.control_port;
    return TP_OK;
}

void tp__chaos_control_stop(struct tp_chaos *p)
{
    if (p->control != NULL)
        MHD_stop_daemon((struct MHD_Daemon *)p->control);
    p->control = NULL;
}

#else /* !TIDEPOOL_HAVE_MICROHTTPD */

tp_err tp__chaos_control_start(struct tp_chaos *p, tp_errinfo *err)
{
    (void)p;
    return tp_errinfo_set(err, TP_ESTATE, 0, "the control API: built without libmicrohttpd");
}

void tp__chaos_control_stop(struct tp_chaos *p)
{
    (void)p;
}

#endif
