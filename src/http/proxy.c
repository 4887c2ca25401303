/* proxy.c: the client's HTTP proxy: which destinations go through it (the options, or
 * the environment when asked, and no_proxy), and the CONNECT tunnel that carries an
 * https:// destination's TLS through it, as one non-blocking step both the blocking
 * open and the engine drive.
 *
 * A plain http:// destination needs no tunnel: its requests go to the proxy in absolute
 * form ("GET http://host:port/path") with the proxy's credentials on each of them
 * (message.c). The proxy is part of the pool key ("proxy:HOST:PORT http://dest:80"), so
 * a proxied connection is never handed to a direct request, nor to another proxy's.
 *
 * Like curl, the environment is read only when asked (proxy_from_env), http_proxy only
 * in lower case (HTTP_PROXY may be set by a CGI request's Proxy header: "httpoxy"),
 * https_proxy and no_proxy in either case; a name in no_proxy covers its subdomains. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"

#define DEFAULT_PROXY_PORT 1080 /* curl's */

static size_t base64(const unsigned char *in, size_t n, char *out, size_t cap)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        if (w + 5 > cap)
            return 0;
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[w++] = tab[v >> 18 & 63];
        out[w++] = tab[v >> 12 & 63];
        out[w++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[w++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[w] = '\0';
    return w;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (userinfo may hold '@', ':' encoded). */
static bool pct_decode(const char *s, size_t n, char *out, size_t cap, size_t *len)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || c == '\r' || c == '\n' || w + 1 >= cap)
            return false;
        out[w++] = c;
    }
    out[w] = '\0';
    *len = w;
    return true;
}

tp_err tp__http_proxy_parse(const char *url, tp__http_proxy *out, tp_errinfo *err)
{
    memset(out, 0, sizeof *out);
    if (url == NULL || url[0] == '\0')
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy: empty URL");
    const char *rest = url;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strstr(url, "://") != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy %.64s: only http:// proxies are supported",
                              url);
    /* userinfo: up to the last '@' before the path */
    size_t hostpart = strcspn(rest, "/?#");
    const char *at = NULL;
    for (const char *p = rest; p < rest + hostpart; p++)
        if (*p == '@')
            at = p;
    if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        char user[256], pass[256], both[520];
        size_t ul = 0, pl = 0;
        size_t un = colon != NULL ? (size_t)(colon - rest) : (size_t)(at - rest);
        if (!pct_decode(rest, un, user, sizeof user, &ul) ||
            (colon != NULL &&
             !pct_decode(colon + 1, (size_t)(at - colon - 1), pass, sizeof pass, &pl)))
            return tp_errinfo_set(err, TP_EINVAL, 0, "proxy: bad user name or password encoding");
        if (colon == NULL)
            pass[0] = '\0';
        int n = snprintf(both, sizeof both, "%s:%s", user, pass);
        memcpy(out->auth, "Basic ", 6);
        if (n < 0 || base64((const unsigned char *)both, (size_t)n, out->auth + 6,
                            sizeof out->auth - 6) == 0)
            return tp_errinfo_set(err, TP_EINVAL, 0, "proxy: credentials too long");
        memset(both, 0, sizeof both);
        memset(pass, 0, sizeof pass);
        rest = at + 1;
        hostpart = strcspn(rest, "/?#");
    }
    const char *tail = rest + hostpart;
    if (*tail != '\0' && strcmp(tail, "/") != 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy %.64s: a proxy URL has no path", url);
    char hp[300];
    if (hostpart == 0 || hostpart >= sizeof hp - 16)
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy %.64s: no host", url);
    memcpy(hp, rest, hostpart);
    hp[hostpart] = '\0';
    /* The URL parser does hosts, brackets and ports: borrow it. */
    char full[320];
    snprintf(full, sizeof full, "http://%s/", hp);
    tp__http_url u;
    tp_errinfo why;
    if (tp__http_url_parse(full, &u, &why) != TP_OK)
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy %.64s: %s", url, why.msg);
    bool has_port = hp[hostpart - 1] != ']' && strrchr(hp, ':') != NULL &&
                    (!u.host_is_ipv6 || strstr(hp, "]:") != NULL);
    memcpy(out->host, u.host, sizeof out->host);
    out->host_is_ipv6 = u.host_is_ipv6;
    out->port = has_port ? u.port : DEFAULT_PROXY_PORT;
    snprintf(out->name, sizeof out->name, u.host_is_ipv6 ? "[%s]:%u" : "%s:%u", out->host,
             (unsigned)out->port);
    out->set = true;
    return TP_OK;
}

static const char *env2(const char *lower, const char *upper)
{
    const char *v = getenv(lower);
    if ((v == NULL || v[0] == '\0') && upper != NULL)
        v = getenv(upper);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

tp_err tp__http_proxy_setup(tp_http_client *c, const tp_http_client_options *o, tp_errinfo *err)
{
    const char *http = o->proxy, *https = o->proxy, *no = o->no_proxy;
    if (o->proxy == NULL && o->proxy_from_env) {
        http = env2("http_proxy", NULL);
        https = env2("https_proxy", "HTTPS_PROXY");
        if (no == NULL)
            no = env2("no_proxy", "NO_PROXY");
    }
    tp_err rc = TP_OK;
    if (http != NULL)
        rc = tp__http_proxy_parse(http, &c->proxy_http, err);
    if (rc == TP_OK && https != NULL)
        rc = tp__http_proxy_parse(https, &c->proxy_https, err);
    if (rc != TP_OK)
        return rc;
    if ((c->proxy_http.set || c->proxy_https.set) && o->unix_socket != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "proxy: not with unix_socket");
    if (no != NULL) {
        c->no_proxy = tp__strdup(no);
        if (c->no_proxy == NULL)
            return tp_errinfo_set(err, TP_ENOMEM, 0, "copying no_proxy");
    }
    return TP_OK;
}

/* Does one no_proxy entry (e[0..n), trimmed) cover host:port? "*": everything; a name
 * covers itself and its subdomains (a leading dot is optional); an IP literal itself;
 * ":PORT" after it limits the entry to that port. */
static bool entry_covers(const char *e, size_t n, const char *host, uint16_t port)
{
    if (n == 1 && e[0] == '*')
        return true;
    const char *colon = NULL;
    if (e[0] == '[') { /* [v6]:port */
        const char *rb = memchr(e, ']', n);
        if (rb == NULL)
            return false;
        if ((size_t)(rb - e) + 1 < n && rb[1] == ':')
            colon = rb + 1;
        e++;
        n = (size_t)(rb - e);
    } else {
        const char *c = memchr(e, ':', n);
        if (c != NULL && memchr(c + 1, ':', n - (size_t)(c - e) - 1) == NULL) { /* not bare v6 */
            colon = c;
            n = (size_t)(c - e);
        }
    }
    if (colon != NULL && (unsigned)atoi(colon + 1) != port)
        return false;
    if (n > 0 && e[0] == '.') {
        e++;
        n--;
    }
    size_t hl = strlen(host);
    if (n == 0 || n > hl || strncasecmp(host + hl - n, e, n) != 0)
        return false;
    return hl == n || host[hl - n - 1] == '.';
}

const tp__http_proxy *tp__http_proxy_for(const tp_http_client *c, const tp__http_url *u)
{
    const tp__http_proxy *p = u->tls ? &c->proxy_https : &c->proxy_http;
    if (!p->set)
        return NULL;
    for (const char *s = c->no_proxy; s != NULL && *s != '\0';) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        size_t n = strcspn(s, ", \t");
        if (n > 0 && entry_covers(s, n, u->host, u->port))
            return NULL;
        s += n;
    }
    return p;
}

/* ---- the CONNECT tunnel ------------------------------------------------------------ */

tp_err tp__http_tunnel_begin(tp__http_tunnel *t, const tp_http_client *c, const tp__http_proxy *p,
                             const char *host, uint16_t port, tp_errinfo *err)
{
    memset(t, 0, sizeof *t);
    tp__buf_init(&t->req);
    bool v6 = strchr(host, ':') != NULL;
    char authority[300];
    snprintf(authority, sizeof authority, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
    snprintf(t->dest, sizeof t->dest, "%s via proxy %s", authority, p->name);
    char head[1200];
    int n = snprintf(head, sizeof head, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", authority,
                     authority);
    if (p->auth[0] != '\0' && n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "Proxy-Authorization: %s\r\n", p->auth);
    if (c->user_agent[0] != '\0' && n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "User-Agent: %s\r\n", c->user_agent);
    if (n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    if (n <= 0 || (size_t)n >= sizeof head)
        return tp_errinfo_set(err, TP_EINVAL, 0, "CONNECT %s: request too long", authority);
    if (tp__buf_append(&t->req, head, (size_t)n) != TP_OK)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "CONNECT %s: building the request", authority);
    return TP_OK;
}

void tp__http_tunnel_free(tp__http_tunnel *t)
{
    tp__buf_free(&t->req);
}

/* The proxy's answer, complete in t->resp[0..end): 2xx opens the tunnel. */
static tp_err judge(tp__http_tunnel *t, size_t end, tp_errinfo *err)
{
    int status = 0;
    if (t->rlen < 12 || strncmp(t->resp, "HTTP/1.", 7) != 0 || t->resp[8] != ' ' ||
        sscanf(t->resp + 9, "%3d", &status) != 1)
        return tp_errinfo_set(err, TP_EPROTO, 0, "CONNECT %s: not an HTTP answer", t->dest);
    t->status = status;
    if (status < 200 || status > 299) {
        size_t line = strcspn(t->resp, "\r\n");
        return tp_errinfo_set(err, TP_EPROXY, 0, "CONNECT %s: the proxy answered \"%.*s\"%s",
                              t->dest, (int)(line < 80 ? line : 80), t->resp,
                              status == 407 ? " (proxy credentials missing or wrong)" : "");
    }
    if (end != t->rlen) /* the server speaks only after our TLS hello */
        return tp_errinfo_set(err, TP_EPROTO, 0,
                              "CONNECT %s: %zu bytes after the proxy's answer", t->dest,
                              t->rlen - end);
    return TP_OK;
}

tp_err tp__http_tunnel_step(tp__http_tunnel *t, tp__stream *s, int *want, tp_errinfo *err)
{
    *want = 0;
    while (t->sent < t->req.len) {
        size_t put = 0;
        tp_err rc = tp__stream_write_step(s, t->req.data + t->sent, t->req.len - t->sent, &put, want,
                                          err);
        t->sent += put;
        if (rc != TP_OK)
            return rc; /* TP_PENDING: wait for *want */
    }
    for (;;) {
        if (t->rlen + 1 >= sizeof t->resp)
            return tp_errinfo_set(err, TP_EPROTO, 0, "CONNECT %s: the proxy's answer is too long",
                                  t->dest);
        size_t got = 0;
        tp_err rc =
            tp__stream_read_step(s, t->resp + t->rlen, sizeof t->resp - 1 - t->rlen, &got, want, err);
        if (rc != TP_OK)
            return rc;
        if (got == 0)
            return tp_errinfo_set(err, TP_EPROXY, 0,
                                  "CONNECT %s: the proxy closed the connection before answering",
                                  t->dest);
        t->rlen += got;
        t->resp[t->rlen] = '\0';
        const char *e = strstr(t->resp, "\r\n\r\n");
        if (e != NULL)
            return judge(t, (size_t)(e - t->resp) + 4, err);
    }
}

tp_err tp__http_tunnel_run(tp__http_tunnel *t, tp__stream *s, int64_t deadline, tp_errinfo *err)
{
    for (;;) {
        int want = 0;
        tp_err rc = tp__http_tunnel_step(t, s, &want, err);
        if (rc != TP_PENDING)
            return rc;
        rc = tp__net_wait(s->fd, want, deadline, "CONNECT", t->dest, err);
        if (rc != TP_OK)
            return rc;
    }
}
