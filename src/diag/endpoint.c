/* endpoint.c: IP endpoints for the diagnostics (parse, format, compare, loopback test,
 * building them from the kernel's byte layout) and the names of TCP states and
 * severities. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag_internal.h"

static const uint8_t k_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static size_t addr_len(int family)
{
    return family == AF_INET6 ? 16 : 4;
}

void tp__diag_endpoint_set(tp_diag_endpoint *e, int family, const uint8_t *addr, uint16_t port)
{
    memset(e, 0, sizeof *e);
    e->port = port;
    /* A v4-mapped address on a dual-stack socket uses IPv4's 4-tuples and ports, so it is
     * the same destination as the plain IPv4 address. */
    if (family == AF_INET6 && memcmp(addr, k_v4mapped, sizeof k_v4mapped) == 0) {
        e->family = AF_INET;
        memcpy(e->addr, addr + 12, 4);
        return;
    }
    e->family = family;
    memcpy(e->addr, addr, addr_len(family));
}

int tp__diag_endpoint_cmp(const tp_diag_endpoint *a, const tp_diag_endpoint *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    int c = memcmp(a->addr, b->addr, addr_len(a->family));
    if (c != 0)
        return c < 0 ? -1 : 1;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    return 0;
}

bool tp__diag_addr_matches(const tp_diag_endpoint *wild, const tp_diag_endpoint *e)
{
    static const uint8_t zero[16];
    bool any = memcmp(wild->addr, zero, addr_len(wild->family)) == 0;
    if (wild->family == e->family)
        return any || memcmp(wild->addr, e->addr, addr_len(e->family)) == 0;
    /* A listener on [::] also accepts IPv4 unless IPV6_V6ONLY; assume it does. */
    return any && wild->family == AF_INET6 && e->family == AF_INET;
}

bool tp_diag_endpoint_equal(const tp_diag_endpoint *a, const tp_diag_endpoint *b)
{
    return a != NULL && b != NULL && tp__diag_endpoint_cmp(a, b) == 0;
}

bool tp_diag_endpoint_is_loopback(const tp_diag_endpoint *e)
{
    static const uint8_t v6lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (e == NULL)
        return false;
    if (e->family == AF_INET)
        return e->addr[0] == 127;
    return e->family == AF_INET6 && memcmp(e->addr, v6lo, 16) == 0;
}

char *tp_diag_endpoint_format(const tp_diag_endpoint *e, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (buf == NULL || size == 0)
        return buf;
    if (e == NULL || (e->family != AF_INET && e->family != AF_INET6)) {
        snprintf(buf, size, "-");
        return buf;
    }
    inet_ntop(e->family, e->addr, ip, sizeof ip);
    if (e->family == AF_INET6)
        snprintf(buf, size, "[%s]:%u", ip, (unsigned)e->port);
    else
        snprintf(buf, size, "%s:%u", ip, (unsigned)e->port);
    return buf;
}

/* Parses the decimal port after the last ':' (1..65535). */
static bool parse_port(const char *s, uint16_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

tp_err tp_diag_endpoint_parse(const char *s, tp_diag_endpoint *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    if (s == NULL || out == NULL)
        return TP_EINVAL;
    memset(out, 0, sizeof *out);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return TP_EINVAL;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
        out->family = AF_INET6;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof host || strchr(s, ':') != colon)
            return TP_EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        out->family = AF_INET;
    }
    uint8_t raw[16] = {0};
    if (inet_pton(out->family, host, raw) != 1 || !parse_port(colon + 1, &out->port)) {
        memset(out, 0, sizeof *out);
        return TP_EINVAL;
    }
    tp__diag_endpoint_set(out, out->family, raw, out->port);
    return TP_OK;
}

const char *tp_diag_state_name(int state)
{
    static const char *const names[TP_DIAG_NSTATES] = {
        "UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT",
        "CLOSE",   "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV"};
    if (state <= 0 || state >= TP_DIAG_NSTATES)
        return "UNKNOWN";
    return names[state];
}

const char *tp_diag_severity_name(int severity)
{
    switch (severity) {
    case TP_DIAG_INFO:
        return "info";
    case TP_DIAG_WARNING:
        return "warning";
    case TP_DIAG_CRITICAL:
        return "critical";
    default:
        return "unknown";
    }
}
