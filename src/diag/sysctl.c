/* sysctl.c: the host settings the port model needs, read from /proc/sys/net/ipv4/
 * (they are per network namespace, like the sockets): the ephemeral port range and its
 * reserved ports, tcp_tw_reuse and its delay, tcp_fin_timeout, tcp_max_tw_buckets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag_internal.h"

#define SYSCTL_DIR "/proc/sys/net/ipv4/"

/* Reads a small sysctl file into buf (NUL-terminated); false if it cannot be read. */
static bool read_small(const char *name, char *buf, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, SYSCTL_DIR "%s", name);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return true;
}

static int read_int(const char *name, int fallback)
{
    char buf[64];
    if (!read_small(name, buf, sizeof buf))
        return fallback;
    char *end;
    long v = strtol(buf, &end, 10);
    if (end == buf || v < 0 || v > 0x7fffffffL)
        return fallback;
    return (int)v;
}

/* Counts the ports of a reserved list ("8080,9000-9010") that fall into [lo, hi]. */
static uint32_t reserved_in_range(const char *list, uint32_t lo, uint32_t hi)
{
    uint32_t n = 0;
    const char *p = list;
    while (*p != '\0') {
        char *end;
        unsigned long a = strtoul(p, &end, 10);
        if (end == p)
            break;
        unsigned long b = a;
        p = end;
        if (*p == '-') {
            b = strtoul(p + 1, &end, 10);
            p = end;
        }
        if (a < lo)
            a = lo;
        if (b > hi)
            b = hi;
        if (b >= a && a <= 65535)
            n += (uint32_t)(b - a + 1);
        while (*p == ',' || *p == ' ' || *p == '\n')
            p++;
    }
    return n;
}

void tp__diag_read_host(tp_diag_host *h)
{
    char buf[4096];
    unsigned lo = 32768, hi = 60999; /* the kernel's default, if the file is missing */
    if (read_small("ip_local_port_range", buf, sizeof buf)) {
        unsigned a, b;
        if (sscanf(buf, "%u %u", &a, &b) == 2 && a <= b && b <= 65535) {
            lo = a;
            hi = b;
        }
    }
    h->port_lo = lo;
    h->port_hi = hi;
    h->port_reserved = 0;
    if (read_small("ip_local_reserved_ports", buf, sizeof buf))
        h->port_reserved = reserved_in_range(buf, lo, hi);
    uint32_t size = tp_diag_port_range_size(lo, hi);
    h->port_range = h->port_reserved < size ? size - h->port_reserved : 0;
    h->tw_reuse = read_int("tcp_tw_reuse", -1);
    /* tcp_tw_reuse_delay is new (Linux 6.14); before it the delay was a fixed 1 s. */
    h->tw_reuse_delay_ms = read_int("tcp_tw_reuse_delay", 1000);
    h->fin_timeout_s = read_int("tcp_fin_timeout", -1);
    h->max_tw_buckets = read_int("tcp_max_tw_buckets", -1);
}
