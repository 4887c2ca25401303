/* resp_headers.c: the response reader's header store and the header rules that decide
 * framing: Content-Length (valid, and identical when repeated), Transfer-Encoding (never
 * with Content-Length; chunked only when it is the last coding) and Keep-Alive's
 * timeout. http-parser checks some of this too, but not all (it takes "Content-Length :"
 * with a space for Content-Length, passes NUL bytes in values, refuses a repeated
 * identical Content-Length, and reads list-valued Transfer-Encoding its own way), so
 * the raw names and values are checked here.
 *
 * Storage: r->store holds "name\0value\0" for each header in arrival order; r->hdrs[i]
 * points into it once header i is complete (name != NULL). Pieces of the header in
 * progress are appended as they arrive. When the store moves (realloc), the pointers of
 * complete headers are recomputed from their lengths. Trailers are counted against the
 * size cap but not kept: a trailer must not pose as a header. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resp_internal.h"

#define TP__KEEPALIVE_MAX_S 86400 /* a day: longer is not a real idle timeout */

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* is_token: RFC 9110 5.6.2 token (tchar = ALPHA / DIGIT / "!#$%&'*+-.^_`|~"). */
static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool alnum =
            (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!alnum && (ch == '\0' || strchr("!#$%&'*+-.^_`|~", ch) == NULL))
            return false;
    }
    return true;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* rebase: after the store moved, points every complete header into the new block. */
static void rebase(tp__http_resp *r)
{
    size_t off = 0;
    for (size_t i = 0; i < r->nhdrs && r->hdrs[i].name != NULL; i++) {
        r->hdrs[i].name = r->store + off;
        off += r->hdrs[i].name_len + 1;
        r->hdrs[i].value = r->store + off;
        off += r->hdrs[i].value_len + 1;
    }
}

/* store_append: the store never outgrows the header cap (every byte stored was counted
 * first), so doubling cannot run away. */
static tp_err store_append(tp__http_rctx *c, const char *data, size_t len)
{
    tp__http_resp *r = c->r;
    if (len == 0)
        return TP_OK; /* http-parser reports empty values; nothing to copy */
    if (len > r->store_cap - r->store_len) {
        size_t cap = r->store_cap ? r->store_cap : 256;
        while (cap - r->store_len < len) {
            if (cap > SIZE_MAX / 2)
                return tp__http_resp_fail(c, TP_ENOMEM, "response header store overflow");
            cap *= 2;
        }
        char *p = tp__realloc(r->store, cap);
        if (p == NULL)
            return tp__http_resp_fail(c, TP_ENOMEM, "out of memory storing response headers");
        r->store = p;
        r->store_cap = cap;
        rebase(r);
    }
    memcpy(r->store + r->store_len, data, len);
    r->store_len += len;
    return TP_OK;
}

static tp_err start_entry(tp__http_rctx *c)
{
    tp__http_resp *r = c->r;
    if (r->nhdrs == r->hdr_cap) {
        size_t cap = r->hdr_cap ? r->hdr_cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof *r->hdrs)
            return tp__http_resp_fail(c, TP_ENOMEM, "too many response headers");
        tp__http_hdr *p = tp__realloc(r->hdrs, cap * sizeof *p);
        if (p == NULL)
            return tp__http_resp_fail(c, TP_ENOMEM, "out of memory storing response headers");
        r->hdrs = p;
        r->hdr_cap = cap;
    }
    r->hdrs[r->nhdrs++] = (tp__http_hdr){NULL, NULL, 0, 0};
    return TP_OK;
}

/* parse_length: a Content-Length value, 1*DIGIT up to INT64_MAX; -1 if invalid (empty,
 * sign, list, spaces inside, overflow). */
static int64_t parse_length(const char *s, size_t len)
{
    if (len == 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    return v;
}

/* finish: header nhdrs-1 is complete: terminate it, drop trailing whitespace (http-parser
 * strips only the leading one), point it into the store and apply the framing rules
 * that can be checked one header at a time. */
static tp_err finish(tp__http_rctx *c)
{
    tp__http_resp *r = c->r;
    tp__http_hdr *h = &r->hdrs[r->nhdrs - 1];
    if (r->last_cb == TP__CB_FIELD && store_append(c, "", 1) != TP_OK)
        return r->err;
    while (h->value_len > 0 && is_ows(r->store[r->store_len - 1])) {
        h->value_len--;
        r->store_len--;
    }
    if (store_append(c, "", 1) != TP_OK)
        return r->err;
    r->last_cb = TP__CB_BEGIN;
    const char *name = r->store + (r->store_len - h->name_len - h->value_len - 2);
    const char *value = name + h->name_len + 1;
    /* http-parser lets spaces into names and then matches "Content-Length :" as
     * Content-Length: the classic request-smuggling ambiguity (RFC 9112 5.1). It also
     * passes NUL bytes in values. A header refused here never becomes visible. */
    if (!is_token(name, h->name_len))
        return tp__http_resp_fail(c, TP_EPROTO, "invalid response header name \"%.40s\"", name);
    if (memchr(value, '\0', h->value_len) != NULL)
        return tp__http_resp_fail(c, TP_EPROTO, "NUL byte in response header \"%.40s\"", name);
    h->name = name;
    h->value = value;

    if (name_is(h->name, h->name_len, "content-length")) {
        int64_t v = parse_length(h->value, h->value_len);
        if (v < 0)
            return tp__http_resp_fail(c, TP_EPROTO, "invalid Content-Length \"%.40s\"", h->value);
        if (r->cl_count > 0 && v != r->content_length)
            return tp__http_resp_fail(c, TP_EPROTO,
                                      "conflicting Content-Length values (%lld and %lld)",
                                      (long long)r->content_length, (long long)v);
        r->content_length = v;
        r->cl_count++;
    } else if (name_is(h->name, h->name_len, "transfer-encoding")) {
        r->has_te = true;
    }
    if (r->has_te && r->cl_count > 0)
        return tp__http_resp_fail(c, TP_EPROTO, "Content-Length together with Transfer-Encoding");
    return TP_OK;
}

tp_err tp__http_hdr_field(tp__http_rctx *c, const char *at, size_t len)
{
    tp__http_resp *r = c->r;
    if (r->headers_done) { /* a trailer */
        if (r->last_cb != TP__CB_TRAILER_FIELD && tp__http_resp_count(c, 4) != TP_OK)
            return r->err;
        r->last_cb = TP__CB_TRAILER_FIELD;
        return tp__http_resp_count(c, len);
    }
    if (r->last_cb != TP__CB_FIELD) {
        if (r->last_cb == TP__CB_VALUE && finish(c) != TP_OK)
            return r->err;
        /* 4: ": " and CRLF, which no callback reports. */
        if (tp__http_resp_count(c, 4) != TP_OK || start_entry(c) != TP_OK)
            return r->err;
        r->last_cb = TP__CB_FIELD;
    }
    if (tp__http_resp_count(c, len) != TP_OK || store_append(c, at, len) != TP_OK)
        return r->err;
    tp__http_hdr *h = &r->hdrs[r->nhdrs - 1];
    h->name_len += len;
    if (r->cl_count > 0) {
        /* http-parser refuses any second Content-Length, even an identical one that RFC
         * 9112 6.3 allows: while the name being read is Content-Length, hide the first
         * from it (finish() compares the values); it sets the flag again as soon as it
         * reads the new value, and any other name restores it. */
        const char *name = r->store + r->store_len - h->name_len;
        unsigned flags = r->parser.flags;
        if (name_is(name, h->name_len, "content-length"))
            flags &= ~(unsigned)F_CONTENTLENGTH;
        else
            flags |= (unsigned)F_CONTENTLENGTH;
        r->parser.flags = flags & 0xffu;
    }
    return TP_OK;
}

tp_err tp__http_hdr_value(tp__http_rctx *c, const char *at, size_t len)
{
    tp__http_resp *r = c->r;
    if (r->headers_done) {
        r->last_cb = TP__CB_TRAILER_VALUE;
        return tp__http_resp_count(c, len);
    }
    if (r->last_cb == TP__CB_FIELD) {
        if (store_append(c, "", 1) != TP_OK) /* ends the name */
            return r->err;
        r->last_cb = TP__CB_VALUE;
    } else if (r->last_cb != TP__CB_VALUE) {
        return tp__http_resp_fail(c, TP_EPROTO, "header value without a name");
    }
    if (tp__http_resp_count(c, len) != TP_OK || store_append(c, at, len) != TP_OK)
        return r->err;
    r->hdrs[r->nhdrs - 1].value_len += len;
    return TP_OK;
}

tp_err tp__http_hdr_end(tp__http_rctx *c)
{
    if (c->r->last_cb == TP__CB_FIELD || c->r->last_cb == TP__CB_VALUE)
        return finish(c);
    return TP_OK;
}

/* next_item: the next comma-separated list element of [*p, end), trimmed of OWS; empty
 * elements are returned as such. False when the list is exhausted. */
static bool next_item(const char **p, const char *end, const char **item, size_t *len)
{
    if (*p > end)
        return false;
    const char *s = *p, *comma = memchr(s, ',', (size_t)(end - s));
    const char *e = comma != NULL ? comma : end;
    *p = comma != NULL ? comma + 1 : end + 1;
    while (s < e && is_ows(*s))
        s++;
    while (e > s && is_ows(e[-1]))
        e--;
    *item = s;
    *len = (size_t)(e - s);
    return true;
}

/* keepalive_timeout: the timeout=N parameter of one Keep-Alive value (N decimal,
 * optionally quoted, clamped to a day), or -1. Malformed parameters are ignored:
 * Keep-Alive is advisory. */
static int64_t keepalive_timeout(const char *v, size_t n)
{
    const char *p = v, *item;
    size_t len;
    while (next_item(&p, v + n, &item, &len)) {
        const char *eq = memchr(item, '=', len);
        if (eq == NULL)
            continue;
        const char *name_end = eq;
        while (name_end > item && is_ows(name_end[-1]))
            name_end--;
        if (!name_is(item, (size_t)(name_end - item), "timeout"))
            continue;
        const char *s = eq + 1, *e = item + len;
        while (s < e && is_ows(*s))
            s++;
        if (e - s >= 2 && *s == '"' && e[-1] == '"') {
            s++;
            e--;
        }
        if (s == e)
            continue;
        int64_t t = 0;
        for (; s < e && *s >= '0' && *s <= '9'; s++)
            if (t <= TP__KEEPALIVE_MAX_S)
                t = t * 10 + (*s - '0');
        if (s != e)
            continue;
        return t > TP__KEEPALIVE_MAX_S ? TP__KEEPALIVE_MAX_S : t;
    }
    return -1;
}

tp_err tp__http_hdr_framing(tp__http_rctx *c, bool *chunked)
{
    tp__http_resp *r = c->r;
    *chunked = false;
    if (r->has_te && r->cl_count > 0)
        return tp__http_resp_fail(c, TP_EPROTO, "Content-Length together with Transfer-Encoding");
    bool any_coding = false;
    for (size_t i = 0; i < r->nhdrs; i++) {
        const tp__http_hdr *h = &r->hdrs[i];
        if (name_is(h->name, h->name_len, "transfer-encoding")) {
            /* Several Transfer-Encoding headers form one list, in order (RFC 9110 5.3). */
            const char *p = h->value, *item;
            size_t len;
            while (next_item(&p, h->value + h->value_len, &item, &len)) {
                if (len == 0)
                    continue;
                any_coding = true;
                *chunked = name_is(item, len, "chunked");
            }
        } else if (name_is(h->name, h->name_len, "keep-alive")) {
            int64_t t = keepalive_timeout(h->value, h->value_len);
            if (t >= 0 && (r->keepalive_timeout_s < 0 || t < r->keepalive_timeout_s))
                r->keepalive_timeout_s = t; /* several: the shortest is the safe one */
        }
    }
    if (r->has_te && !any_coding)
        return tp__http_resp_fail(c, TP_EPROTO, "empty Transfer-Encoding");
    return TP_OK;
}

void tp__http_hdr_clear(tp__http_resp *r)
{
    r->nhdrs = 0;
    r->store_len = 0;
    r->cl_count = 0;
    r->has_te = false;
    r->content_length = -1;
    r->keepalive_timeout_s = -1;
}

void tp__http_hdr_free(tp__http_resp *r)
{
    tp__free(r->hdrs);
    tp__free(r->store);
    r->hdrs = NULL;
    r->store = NULL;
    r->nhdrs = r->hdr_cap = 0;
    r->store_len = r->store_cap = 0;
}

const char *tp__http_resp_header(const tp__http_resp *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->nhdrs && r->hdrs[i].name != NULL; i++)
        if (name_is(r->hdrs[i].name, r->hdrs[i].name_len, name))
            return r->hdrs[i].value;
    return NULL;
}
