/* serve.c: the embedded HTTP exporter on libmicrohttpd. One internal thread (MHD's
 * polling thread, epoll on Linux) answers GET /metrics and GET /debug/pools by rendering
 * the registry; the registry's lock keeps a render and an unregister apart.
 *
 * libmicrohttpd binds the socket itself; its error log is captured while the daemon
 * starts so that a failure (port in use, say) reaches the caller's tp_errinfo instead
 * of stderr. Without libmicrohttpd the API exists and fails with TP_ESTATE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "internal.h"

void tp_metrics_serve_options_init(tp_metrics_serve_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->version = TP_METRICS_SERVE_OPTIONS_VERSION;
    o->allow_non_loopback = false;
    o->max_connections = 16;
    o->connection_timeout = 10 * TP_NSEC_PER_SEC;
}

tp_err tp_metrics_serve(tp_metrics *m, const char *addr, tp_metrics_exporter **out, tp_errinfo *err)
{
    return tp_metrics_serve_ex(m, addr, NULL, out, err);
}

/* Checks the arguments common to both builds; parses addr into ss. */
static tp_err check_args(tp_metrics *m, const char *addr, const tp_metrics_serve_options *o,
                         struct sockaddr_storage *ss, tp_errinfo *err)
{
    if (m == NULL || addr == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "tp_metrics_serve: registry and address "
                              "are required");
    if (o->version != TP_METRICS_SERVE_OPTIONS_VERSION)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "version: %u is not TP_METRICS_SERVE_OPTIONS_VERSION (%u); call "
                              "tp_metrics_serve_options_init()",
                              o->version, (unsigned)TP_METRICS_SERVE_OPTIONS_VERSION);
    if (o->max_connections == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "max_connections: must be at least 1");
    if (o->connection_timeout < TP_NSEC_PER_SEC)
        return tp_errinfo_set(err, TP_EINVAL, 0, "connection_timeout: must be at least 1 s");
    tp_err rc = tp__maddr_parse(addr, ss, err);
    if (rc != TP_OK)
        return rc;
    if (!o->allow_non_loopback && !tp__maddr_is_loopback(ss))
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "metrics exporter address \"%.64s\" is not a loopback address; "
                              "metrics reveal the program's destinations, so serving them "
                              "beyond this host needs allow_non_loopback = true",
                              addr);
    return TP_OK;
}

#ifdef TIDEPOOL_HAVE_MICROHTTPD

#include <microhttpd.h>
#include <pthread.h>

/* Start-up log capture: MHD's first message while the daemon starts, for the caller's
 * tp_errinfo. MHD keeps the logger for the daemon's life (it may log from its thread
 * later), so this lives in the exporter and ignores everything once on is false. */
typedef struct capture {
    tp__mutex mu;
    bool on;
    int sys_errno;
    char msg[160];
} capture;

struct tp_metrics_exporter {
    tp_metrics *m;
    struct MHD_Daemon *d;
    int port;
    capture cap;
};

static void log_cb(void *cls, const char *fm, va_list ap)
{
    capture *c = cls;
    int saved = errno;
    tp__mutex_lock(&c->mu);
    if (c->on && c->msg[0] == '\0') {
        c->sys_errno = saved;
        vsnprintf(c->msg, sizeof c->msg, fm, ap);
        size_t n = strlen(c->msg);
        while (n > 0 && (c->msg[n - 1] == '\n' || c->msg[n - 1] == '.'))
            c->msg[--n] = '\0';
    }
    tp__mutex_unlock(&c->mu);
}

static enum MHD_Result send_static(struct MHD_Connection *c, unsigned status, const char *body,
                                   bool allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_render(struct MHD_Connection *c, tp_metrics *m, tp_metrics_format fmt)
{
    char *body = NULL;
    size_t len = 0;
    if (tp_metrics_render(m, fmt, &body, &len) != TP_OK)
        return send_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", false);
    /* MHD frees body (from the library's allocator) once the response is gone. */
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body, tp__free);
    if (r == NULL) {
        tp__free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            fmt == TP_METRICS_JSON ? "application/json"
                                                   : "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    static int seen; /* marks a request whose header was seen */
    tp_metrics_exporter *e = cls;
    (void)version;
    (void)upload;
    /* The first call only announces the request; answering after the (discarded) body
     * keeps the connection usable for the next request. */
    if (*req == NULL) {
        *req = &seen;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_static(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", true);
    if (strcmp(url, "/metrics") == 0)
        return send_render(c, e->m, TP_METRICS_PROMETHEUS);
    if (strcmp(url, "/debug/pools") == 0)
        return send_render(c, e->m, TP_METRICS_JSON);
    return send_static(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /debug/pools\n", false);
}

/* Starts the daemon on ss (arguments already checked). */
static tp_err start_exporter(tp_metrics *m, const char *addr, const tp_metrics_serve_options *o,
                             struct sockaddr_storage *ss, tp_metrics_exporter **out,
                             tp_errinfo *err)
{
    tp_metrics_exporter *e = tp__calloc(1, sizeof *e);
    if (e == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating the metrics exporter");
    e->m = m;
    capture *cap = &e->cap;
    cap->on = true;
    int sys = tp__mutex_init(&cap->mu);
    if (sys != 0) {
        tp__free(e);
        return tp_errinfo_set(err, TP_ESYS, 0, "creating a lock failed");
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned timeout_s = (unsigned)(o->connection_timeout / TP_NSEC_PER_SEC > 86400
                                        ? 86400
                                        : o->connection_timeout / TP_NSEC_PER_SEC);
    /* MHD binds to SOCK_ADDR; its port argument only appears in its messages. */
    uint16_t port = ss->ss_family == AF_INET6
                        ? ntohs(((struct sockaddr_in6 *)(void *)ss)->sin6_port)
                        : ntohs(((struct sockaddr_in *)(void *)ss)->sin_port);
    e->d = MHD_start_daemon(flags, port, NULL, NULL, handle, e, MHD_OPTION_EXTERNAL_LOGGER, log_cb,
                            cap, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
                            MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_END);
    tp__mutex_lock(&cap->mu);
    cap->on = false;
    tp__mutex_unlock(&cap->mu);
    if (e->d == NULL) {
        tp_err rc = tp_errinfo_set(err, TP_ESYS, cap->sys_errno,
                                   "metrics exporter on %.64s could not start: %s", addr,
                                   cap->msg[0] != '\0' ? cap->msg : "libmicrohttpd refused");
        tp__mutex_destroy(&cap->mu);
        tp__free(e);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(e->d, MHD_DAEMON_INFO_BIND_PORT);
    e->port = info != NULL ? info->port : 0;
    *out = e;
    return TP_OK;
}

int tp_metrics_exporter_port(const tp_metrics_exporter *e)
{
    return e != NULL ? e->port : 0;
}

void tp_metrics_exporter_stop(tp_metrics_exporter *e)
{
    if (e == NULL)
        return;
    MHD_stop_daemon(e->d);
    tp__mutex_destroy(&e->cap.mu);
    tp__free(e);
}

#else /* !TIDEPOOL_HAVE_MICROHTTPD */

struct tp_metrics_exporter {
    int unused;
};

static tp_err start_exporter(tp_metrics *m, const char *addr, const tp_metrics_serve_options *o,
                             struct sockaddr_storage *ss, tp_metrics_exporter **out,
                             tp_errinfo *err)
{
    (void)m, (void)addr, (void)o, (void)ss, (void)out;
    return tp_errinfo_set(err, TP_ESTATE, 0, "metrics exporter: built without libmicrohttpd");
}

int tp_metrics_exporter_port(const tp_metrics_exporter *e)
{
    (void)e;
    return 0;
}

void tp_metrics_exporter_stop(tp_metrics_exporter *e)
{
    (void)e;
}

#endif

/* Both builds check the arguments alike, so callers see one contract. */
tp_err tp_metrics_serve_ex(tp_metrics *m, const char *addr, const tp_metrics_serve_options *o,
                           tp_metrics_exporter **out, tp_errinfo *err)
{
    if (out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "tp_metrics_serve: out is NULL");
    *out = NULL;
    tp_metrics_serve_options defaults;
    if (o == NULL) {
        tp_metrics_serve_options_init(&defaults);
        o = &defaults;
    }
    struct sockaddr_storage ss;
    tp_err rc = check_args(m, addr, o, &ss, err);
    if (rc != TP_OK)
        return rc;
    return start_exporter(m, addr, o, &ss, out, err);
}
