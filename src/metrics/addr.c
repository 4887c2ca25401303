/* addr.c: the exporter's listen address: "HOST:PORT" parsed without name resolution
 * (a numeric IPv4 address, "[IPv6]", "localhost" or nothing), and the loopback check
 * that keeps an exporter private unless its owner says otherwise. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

static tp_err bad(tp_errinfo *err, const char *addr, const char *why)
{
    return tp_errinfo_set(err, TP_EINVAL, 0,
                          "metrics exporter address \"%.64s\": %s (expected HOST:PORT, e.g. "
                          "127.0.0.1:9464)",
                          addr, why);
}

tp_err tp__maddr_parse(const char *addr, struct sockaddr_storage *ss, tp_errinfo *err)
{
    memset(ss, 0, sizeof *ss);
    const char *colon = strrchr(addr, ':');
    if (colon == NULL)
        return bad(err, addr, "no port");
    char host[64];
    size_t hn = (size_t)(colon - addr);
    const char *h = addr;
    bool bracketed = hn >= 2 && addr[0] == '[' && addr[hn - 1] == ']';
    if (bracketed) {
        h++;
        hn -= 2;
    }
    if (hn >= sizeof host)
        return bad(err, addr, "host too long");
    memcpy(host, h, hn);
    host[hn] = '\0';

    const char *ps = colon + 1;
    if (*ps == '\0' || strlen(ps) > 5 || strspn(ps, "0123456789") != strlen(ps))
        return bad(err, addr, "the port is not a number");
    long port = strtol(ps, NULL, 10);
    if (port > 65535)
        return bad(err, addr, "the port is above 65535");

    if (hn == 0 || strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)ss;
    if (!bracketed && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return TP_OK;
    }
    if (bracketed && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return TP_OK;
    }
    if (!bracketed && strchr(host, ':') != NULL)
        return bad(err, addr, "write an IPv6 address in brackets, [::1]:PORT");
    return bad(err, addr, "the host is not a numeric IP address or \"localhost\"");
}

bool tp__maddr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)ss;
        return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && v6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}
