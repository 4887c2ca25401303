/* request.c: serialising an HTTP/1.1 request head (request line, Host, the caller's
 * headers, framing headers) and classifying methods as idempotent.
 *
 * Everything that ends up on the wire is validated here, because this is the last point
 * where a caller-supplied string can still be stopped from splitting a request or
 * smuggling a second one: the method and header names must be RFC 9110 tokens, values
 * must not hold CR, LF or NUL, and the headers that decide framing and connection
 * reuse (Host, Content-Length, Transfer-Encoding, Connection) belong to the client. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

/* is_tchar: RFC 9110 5.6.2 token characters. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

/* The caller may not set these: the client decides framing and connection reuse. */
static const char *const reserved_headers[] = {"Host", "Content-Length", "Transfer-Encoding",
                                               "Connection"};

/* check_header: one caller header; TP_EINVAL with a message naming it if it is not a
 * token, is reserved, or its value could break out of its line. */
static tp_err check_header(const char *name, const char *value, size_t i, tp_errinfo *err)
{
    if (name == NULL || value == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "header %zu has a NULL name or value", i);
    if (!is_token(name))
        return tp_errinfo_set(err, TP_EINVAL, 0, "header %zu: name \"%.64s\" is not a valid token",
                              i, name);
    for (size_t k = 0; k < sizeof reserved_headers / sizeof reserved_headers[0]; k++)
        if (strcasecmp(name, reserved_headers[k]) == 0)
            return tp_errinfo_set(err, TP_EINVAL, 0,
                                  "header \"%s\" is set by the client and may not be given",
                                  reserved_headers[k]);
    if (strpbrk(value, "\r\n") != NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "header \"%.64s\": value contains CR or LF", name);
    return TP_OK;
}

/* check_url: the parts of url that go on the wire. tp__http_url_parse() guarantees all
 * of this; the check protects against a hand-filled or corrupted struct. */
static tp_err check_url(const tp__http_url *url, size_t *host_len, size_t *target_len,
                        tp_errinfo *err)
{
    *host_len = strnlen(url->host, sizeof url->host);
    *target_len = strnlen(url->target, sizeof url->target);
    if (*host_len == 0 || *host_len == sizeof url->host || *target_len == 0 ||
        *target_len == sizeof url->target)
        return tp_errinfo_set(err, TP_EINVAL, 0, "URL host or target is empty or unterminated");
    for (size_t i = 0; i < *host_len; i++) {
        unsigned char c = (unsigned char)url->host[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '@' || c == '[' || c == ']' ||
            (c == ':' && !url->host_is_ipv6))
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL host has a forbidden byte");
    }
    for (size_t i = 0; i < *target_len; i++) {
        unsigned char c = (unsigned char)url->target[i];
        if (c <= 0x20 || c >= 0x7f)
            return tp_errinfo_set(err, TP_EINVAL, 0, "URL target has a forbidden byte");
    }
    return TP_OK;
}

static tp_err append_str(tp__buf *out, const char *s)
{
    return tp__buf_append(out, s, strlen(s));
}

/* write_head: appends the whole head; any failure is TP_ENOMEM (everything was
 * validated before). Stops at the first failure. */
static tp_err write_head(tp__buf *out, const char *method, const tp__http_url *url, size_t host_len,
                         size_t target_len, const char *const *names, const char *const *values,
                         size_t nheaders, bool send_length, size_t body_len, bool keepalive)
{
    char num[48];
    tp_err rc = append_str(out, method);
    if (rc == TP_OK)
        rc = tp__buf_append(out, " ", 1);
    if (rc == TP_OK)
        rc = tp__buf_append(out, url->target, target_len);
    if (rc == TP_OK)
        rc = append_str(out, " HTTP/1.1\r\nHost: ");
    if (rc == TP_OK && url->host_is_ipv6)
        rc = tp__buf_append(out, "[", 1);
    if (rc == TP_OK)
        rc = tp__buf_append(out, url->host, host_len);
    if (rc == TP_OK && url->host_is_ipv6)
        rc = tp__buf_append(out, "]", 1);
    if (rc == TP_OK && url->port != (url->tls ? 443 : 80)) {
        snprintf(num, sizeof num, ":%u", (unsigned)url->port);
        rc = append_str(out, num);
    }
    if (rc == TP_OK)
        rc = tp__buf_append(out, "\r\n", 2);
    for (size_t i = 0; rc == TP_OK && i < nheaders; i++) {
        rc = append_str(out, names[i]);
        if (rc == TP_OK)
            rc = tp__buf_append(out, ": ", 2);
        if (rc == TP_OK)
            rc = append_str(out, values[i]);
        if (rc == TP_OK)
            rc = tp__buf_append(out, "\r\n", 2);
    }
    if (rc == TP_OK && body_len == TP__HTTP_BODY_CHUNKED) {
        rc = append_str(out, "Transfer-Encoding: chunked\r\n");
    } else if (rc == TP_OK && send_length) {
        snprintf(num, sizeof num, "Content-Length: %zu\r\n", body_len);
        rc = append_str(out, num);
    }
    if (rc == TP_OK && !keepalive)
        rc = append_str(out, "Connection: close\r\n");
    if (rc == TP_OK)
        rc = tp__buf_append(out, "\r\n", 2);
    return rc;
}

tp_err tp__http_req_build(tp__buf *out, const char *method, const tp__http_url *url,
                          const char *const *names, const char *const *values, size_t nheaders,
                          size_t body_len, bool keepalive, tp_errinfo *err)
{
    if (out == NULL || method == NULL || url == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "request: NULL buffer, method or URL");
    if (nheaders > 0 && (names == NULL || values == NULL))
        return tp_errinfo_set(err, TP_EINVAL, 0, "request: %zu headers but no arrays", nheaders);
    if (!is_token(method))
        return tp_errinfo_set(err, TP_EINVAL, 0, "request method \"%.32s\" is not a valid token",
                              method);
    size_t host_len, target_len;
    tp_err rc = check_url(url, &host_len, &target_len, err);
    if (rc != TP_OK)
        return rc;
    for (size_t i = 0; i < nheaders; i++) {
        rc = check_header(names[i], values[i], i, err);
        if (rc != TP_OK)
            return rc;
    }
    /* POST, PUT and PATCH carry a body by definition: an empty one is announced as
     * "Content-Length: 0" because some servers answer 411 Length Required otherwise. */
    bool send_length = body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                       strcmp(method, "PATCH") == 0;
    size_t mark = out->len;
    rc = write_head(out, method, url, host_len, target_len, names, values, nheaders, send_length,
                    body_len, keepalive);
    if (rc != TP_OK) {
        out->len = mark; /* leave out as it was: no half-written request */
        if (out->data != NULL)
            out->data[mark] = '\0';
        return tp_errinfo_set(err, rc, 0, "request: out of memory building the head");
    }
    return TP_OK;
}

bool tp__http_method_idempotent(const char *method)
{
    static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    if (method == NULL)
        return false;
    for (size_t i = 0; i < sizeof idempotent / sizeof idempotent[0]; i++)
        if (strcmp(method, idempotent[i]) == 0)
            return true;
    return false;
}
