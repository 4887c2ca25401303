/* redirect.c: following a redirect (off by default: max_redirects): which statuses
 * are redirects, where Location points (resolved against the request's URL, RFC 3986
 * section 5.2), what the next request keeps (RFC 9110 section 15.4: 303 becomes GET;
 * 301 and 302 turn a POST into a GET, as every browser, Go and curl do; 307 and 308
 * keep the method and the body), and which headers must not cross to another origin
 * (Authorization, Cookie, Proxy-Authorization: the caller meant them for the first).
 * Pure functions; both request paths call them. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client.h"

bool tp__http_is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool tp__http_redirect_keeps_body(int status, const char *method)
{
    if (status == 307 || status == 308)
        return true;
    if (status == 303)
        return false;
    return strcmp(method, "POST") != 0; /* 301, 302: POST becomes GET */
}

const char *tp__http_redirect_method(int status, const char *method)
{
    if (status == 303)
        return strcmp(method, "HEAD") == 0 ? "HEAD" : "GET";
    if ((status == 301 || status == 302) && strcmp(method, "POST") == 0)
        return "GET";
    return method;
}

bool tp__http_same_origin(const tp__http_url *a, const tp__http_url *b)
{
    return a->tls == b->tls && a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

bool tp__http_header_is_credential(const char *name)
{
    return strcasecmp(name, "Authorization") == 0 || strcasecmp(name, "Cookie") == 0 ||
           strcasecmp(name, "Proxy-Authorization") == 0;
}

/* Drops the last segment of path p (up to and including its last '/' kept). */
static size_t dir_len(const char *p)
{
    const char *q = strchr(p, '?');
    size_t n = q != NULL ? (size_t)(q - p) : strlen(p);
    while (n > 0 && p[n - 1] != '/')
        n--;
    return n;
}

/* Removes "." and ".." segments (RFC 3986 5.2.4) from the path part of t in place. */
static void remove_dots(char *t)
{
    char *q = strchr(t, '?');
    char query[2048] = "";
    if (q != NULL) {
        snprintf(query, sizeof query, "%s", q);
        *q = '\0';
    }
    char out[2048];
    size_t w = 0;
    const char *in = t;
    while (*in != '\0') {
        if (strncmp(in, "/./", 3) == 0) {
            in += 2;
        } else if (strcmp(in, "/.") == 0) {
            in = "/";
        } else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
            in = in[3] == '\0' ? "/" : in + 3;
            while (w > 0 && out[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* the '/' before the dropped segment */
        } else {
            do
                out[w++] = *in++;
            while (*in != '\0' && *in != '/' && w < sizeof out - 1);
        }
        if (w >= sizeof out - 1)
            break;
    }
    out[w] = '\0';
    snprintf(t, 2048, "%s%s", w > 0 ? out : "/", query);
}

tp_err tp__http_redirect_target(const tp__http_url *base, const char *location, tp__http_url *out,
                                tp_errinfo *err)
{
    if (location == NULL || location[0] == '\0')
        return tp_errinfo_set(err, TP_EPROTO, 0, "redirect without a Location");
    char url[2400];
    const char *scheme = base->tls ? "https" : "http";
    char authority[300];
    snprintf(authority, sizeof authority, base->host_is_ipv6 ? "[%s]:%u" : "%s:%u", base->host,
             (unsigned)base->port);
    size_t frag = strcspn(location, "#"); /* a fragment never goes on the wire */
    if (strncasecmp(location, "http://", 7) == 0 || strncasecmp(location, "https://", 8) == 0)
        snprintf(url, sizeof url, "%.*s", (int)frag, location);
    else if (strstr(location, "://") != NULL || strncasecmp(location, "javascript:", 11) == 0)
        return tp_errinfo_set(err, TP_EPROTO, 0, "redirect to %.64s: not an http(s) URL", location);
    else if (location[0] == '/' && location[1] == '/')
        snprintf(url, sizeof url, "%s:%.*s", scheme, (int)frag, location);
    else if (location[0] == '/')
        snprintf(url, sizeof url, "%s://%s%.*s", scheme, authority, (int)frag, location);
    else if (location[0] == '?')
        snprintf(url, sizeof url, "%s://%s%.*s%.*s", scheme, authority,
                 (int)strcspn(base->target, "?"), base->target, (int)frag, location);
    else
        snprintf(url, sizeof url, "%s://%s%.*s%.*s", scheme, authority, (int)dir_len(base->target),
                 base->target, (int)frag, location);
    tp_errinfo why;
    if (tp__http_url_parse(url, out, &why) != TP_OK)
        return tp_errinfo_set(err, TP_EPROTO, 0, "redirect to %.64s: %s", location, why.msg);
    remove_dots(out->target);
    return TP_OK;
}

/* ---- the hop: what the next request of a redirect chain carries ---------------------- */

static char *dup_str(const char *s, bool *fail)
{
    char *d = tp__strdup(s);
    if (d == NULL)
        *fail = true;
    return d;
}

tp_err tp__http_hop_init(tp__http_hop *hop, const tp_http_request *req, const char *method,
                         const tp__http_url *u, tp_errinfo *err)
{
    memset(hop, 0, sizeof *hop);
    hop->url = *u;
    bool fail = false;
    hop->method = dup_str(method, &fail);
    if (req->nheaders > 0) {
        hop->names = tp__calloc(req->nheaders, sizeof *hop->names);
        hop->values = tp__calloc(req->nheaders, sizeof *hop->values);
        fail = fail || hop->names == NULL || hop->values == NULL;
        for (size_t i = 0; !fail && i < req->nheaders; i++) {
            hop->names[i] = dup_str(req->header_names[i], &fail);
            hop->values[i] = dup_str(req->header_values[i], &fail);
            hop->nheaders = i + 1;
        }
    }
    hop->body = req->body;
    hop->body_len = req->body_len;
    if (fail) {
        tp__http_hop_free(hop);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "copying the request for redirects");
    }
    return TP_OK;
}

void tp__http_hop_free(tp__http_hop *hop)
{
    for (size_t i = 0; i < hop->nheaders; i++) {
        tp__free(hop->names[i]);
        tp__free(hop->values[i]);
    }
    tp__free(hop->names);
    tp__free(hop->values);
    tp__free(hop->method);
    memset(hop, 0, sizeof *hop);
}

tp_err tp__http_hop_next(tp__http_hop *hop, int status, const char *location, int max,
                         tp_errinfo *err)
{
    if (hop->redirects >= max)
        return tp_errinfo_set(err, TP_ELIMIT, 0,
                              "stopped after %d redirects (max_redirects); the last, %d, to %.80s",
                              hop->redirects, status, location != NULL ? location : "");
    tp__http_url next;
    tp_err rc = tp__http_redirect_target(&hop->url, location, &next, err);
    if (rc != TP_OK)
        return rc;
    const char *m = tp__http_redirect_method(status, hop->method);
    if (!tp__http_redirect_keeps_body(status, hop->method)) {
        hop->body = NULL;
        hop->body_len = 0;
    }
    if (m != hop->method) {
        char *nm = tp__strdup(m);
        if (nm == NULL)
            return tp_errinfo_set(err, TP_ENOMEM, 0, "redirect: out of memory");
        tp__free(hop->method);
        hop->method = nm;
    }
    if (!tp__http_same_origin(&hop->url, &next)) { /* credentials stay with their origin */
        size_t k = 0;
        for (size_t i = 0; i < hop->nheaders; i++) {
            if (tp__http_header_is_credential(hop->names[i])) {
                tp__free(hop->names[i]);
                tp__free(hop->values[i]);
                continue;
            }
            hop->names[k] = hop->names[i];
            hop->values[k++] = hop->values[i];
        }
        hop->nheaders = k;
    }
    hop->url = next;
    hop->redirects++;
    return TP_OK;
}

void tp__http_hop_request(const tp__http_hop *hop, const tp_http_request *orig, char *buf,
                          size_t cap, tp_http_request *out)
{
    const tp__http_url *u = &hop->url;
    snprintf(buf, cap, u->host_is_ipv6 ? "%s://[%s]:%u%s" : "%s://%s:%u%s",
             u->tls ? "https" : "http", u->host, (unsigned)u->port, u->target);
    *out = *orig;
    out->url = buf;
    out->method = hop->method;
    out->header_names = (const char *const *)hop->names;
    out->header_values = (const char *const *)hop->values;
    out->nheaders = hop->nheaders;
    out->body = hop->body;
    out->body_len = hop->body_len;
}
