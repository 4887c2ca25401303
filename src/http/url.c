/* url.c: tp__http_url_parse, absolute http:// and https:// URLs into the parts a request
 * needs (scheme, host, port, request target). http-parser's http_parser_parse_url does
 * the RFC 3986 work; this file adds what a client must refuse before the URL reaches a
 * socket or a request line: other schemes, userinfo (credentials would end up in keys
 * and logs), empty hosts, port 0, control bytes and spaces (request splitting), and
 * targets too long for tp__http_url. A light scan of the authority comes first only to
 * give each refusal a precise message; http-parser has the last word on syntax. */
#include <string.h>

#include "parse.h"

/* Longest URL considered at all: http-parser keeps offsets in uint16_t, and a target
 * longer than tp__http_url.target allows is refused below anyway. */
#define TP__URL_MAX 8192

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool prefix_nocase(const char *s, const char *prefix)
{
    for (; *prefix != '\0'; s++, prefix++)
        if (lower(*s) != *prefix)
            return false;
    return true;
}

/* check_bytes: refuses NUL-free strings holding control bytes, spaces or non-ASCII bytes
 * (which must be percent-encoded); any of them in a request line could split it. */
static tp_err check_bytes(const char *url, size_t len, tp_errinfo *err)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "URL has a control character or space at offset %zu", i);
        if (c >= 0x80)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "URL has a non-ASCII byte at offset %zu (percent-encode it)", i);
    }
    return TP_OK;
}

/* check_authority: the authority is url[start, end). Refuses userinfo, IPv6 zone ids,
 * an empty host and a port that is empty, not decimal, 0 or above 65535, each with its
 * own message. */
static tp_err check_authority(const char *a, size_t n, tp_errinfo *err)
{
    if (memchr(a, '@', n) != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "URL has userinfo (user:password@): not supported, send an "
                              "Authorization header instead");
    size_t host_end = n; /* where the host ends (a ':' or the end) */
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL)
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL has an unterminated IPv6 literal");
        if (memchr(a, '%', (size_t)(close - a)) != NULL)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "URL has an IPv6 zone identifier: not supported");
        if (close - a == 1)
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL has an empty host");
        host_end = (size_t)(close - a) + 1;
        if (host_end < n && a[host_end] != ':')
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL has junk after the IPv6 literal");
    } else {
        const char *colon = memchr(a, ':', n);
        if (colon != NULL)
            host_end = (size_t)(colon - a);
        if (host_end == 0)
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL has an empty host");
    }
    if (host_end == n)
        return TP_OK;
    const char *p = a + host_end + 1, *end = a + n;
    if (p == end)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL has an empty port");
    unsigned long port = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL has a bad port (not a decimal number)");
        port = port * 10 + (unsigned long)(*p - '0');
        if (port > 65535)
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL has a bad port (above 65535)");
    }
    if (port == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL has a bad port (0)");
    return TP_OK;
}

tp_err tp__http_url_parse(const char *url, tp__http_url *out, tp_errinfo *err)
{
    if (url == NULL || out == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL is NULL");
    size_t len = strnlen(url, TP__URL_MAX + 1);
    if (len > TP__URL_MAX)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL is too long (over %d bytes)", TP__URL_MAX);
    tp_err rc = check_bytes(url, len, err);
    if (rc != TP_OK)
        return rc;
    /* The fragment never leaves the client; cutting it first also spares http-parser
     * the "http://host#frag" form it refuses. */
    const char *hash = memchr(url, '#', len);
    if (hash != NULL)
        len = (size_t)(hash - url);

    bool tls;
    size_t scheme_len;
    if (prefix_nocase(url, "http://")) {
        tls = false;
        scheme_len = 7;
    } else if (prefix_nocase(url, "https://")) {
        tls = true;
        scheme_len = 8;
    } else {
        return tp_errinfo_set(err, TP_EINVAL, 0,
                              "URL scheme must be http:// or https:// (absolute URLs only)");
    }
    size_t auth_len = strcspn(url + scheme_len, "/?#");
    if (scheme_len + auth_len > len)
        auth_len = len - scheme_len;
    rc = check_authority(url + scheme_len, auth_len, err);
    if (rc != TP_OK)
        return rc;

    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, len, 0, &u) != 0 || !(u.field_set & (1u << UF_SCHEMA)) ||
        !(u.field_set & (1u << UF_HOST)))
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL is malformed (invalid host or path)");
    if (u.field_set & (1u << UF_USERINFO))
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL has userinfo: not supported");

    size_t host_off = u.field_data[UF_HOST].off, host_len = u.field_data[UF_HOST].len;
    if (host_len == 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL has an empty host");
    if (host_len >= sizeof out->host)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL host is longer than %zu bytes",
                              sizeof out->host - 1);

    size_t path_len = (u.field_set & (1u << UF_PATH)) ? u.field_data[UF_PATH].len : 0;
    bool has_query = (u.field_set & (1u << UF_QUERY)) != 0;
    size_t query_len = has_query ? u.field_data[UF_QUERY].len : 0;
    size_t target_len = (path_len > 0 ? path_len : 1) + (has_query ? 1 + query_len : 0);
    if (target_len >= sizeof out->target)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL request target is longer than %zu bytes",
                              sizeof out->target - 1);

    /* Everything is valid: fill *out only now, so a failure leaves it untouched. */
    memset(out, 0, sizeof *out);
    out->tls = tls;
    for (size_t i = 0; i < host_len; i++)
        out->host[i] = lower(url[host_off + i]);
    out->host[host_len] = '\0';
    out->host_is_ipv6 = host_off > 0 && url[host_off - 1] == '[';
    out->port = (u.field_set & (1u << UF_PORT)) ? u.port : (uint16_t)(tls ? 443 : 80);

    char *t = out->target;
    if (path_len > 0) {
        memcpy(t, url + u.field_data[UF_PATH].off, path_len);
        t += path_len;
    } else {
        *t++ = '/';
    }
    if (has_query) {
        *t++ = '?';
        memcpy(t, url + u.field_data[UF_QUERY].off, query_len);
        t += query_len;
    }
    *t = '\0';
    return TP_OK;
}
