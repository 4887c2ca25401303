/* procfs.c: the fallback socket source, used only when NETLINK_SOCK_DIAG cannot be
 * (a sandbox without it, a kernel without inet_diag): /proc/net/tcp and /proc/net/tcp6.
 * They give the same 4-tuples, states, queues, timers and inodes, but no tcp_info, so
 * there is no RTT or retransmission data in that mode. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag_internal.h"
#include "net/net.h" /* tp__errno_text */

/* Decodes the kernel's "%08X" words of an address. Each word is a 32-bit value printed in
 * host order from network-order memory, so storing it back natively restores the bytes. */
static bool parse_addr(const char *hex, size_t words, uint8_t *out)
{
    if (strlen(hex) != words * 8)
        return false;
    for (size_t i = 0; i < words; i++) {
        char word[9];
        memcpy(word, hex + i * 8, 8);
        word[8] = '\0';
        char *end;
        unsigned long v = strtoul(word, &end, 16);
        if (*end != '\0')
            return false;
        uint32_t w = (uint32_t)v;
        memcpy(out + i * 4, &w, 4);
    }
    return true;
}

/* Parses one line of /proc/net/tcp{,6}; false for the header or a malformed line. */
static bool parse_line(const char *line, int family, long ticks_per_s, tp_diag_socket *s)
{
    char lhex[40], rhex[40];
    unsigned lport, rport, state, txq, rxq, timer, retr, uid, timeout;
    unsigned long when, inode;
    int n = sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %39[0-9A-Fa-f]:%x %x %x:%x %x:%lx %x %u %u %lu",
                   lhex, &lport, rhex, &rport, &state, &txq, &rxq, &timer, &when, &retr, &uid,
                   &timeout, &inode);
    if (n != 13)
        return false;
    uint8_t la[16] = {0}, ra[16] = {0};
    size_t words = family == AF_INET6 ? 4 : 1;
    if (!parse_addr(lhex, words, la) || !parse_addr(rhex, words, ra))
        return false;
    memset(s, 0, sizeof *s);
    tp__diag_endpoint_set(&s->local, family, la, (uint16_t)lport);
    tp__diag_endpoint_set(&s->remote, family, ra, (uint16_t)rport);
    s->state = (int)state;
    s->wqueue = txq;
    s->rqueue = rxq;
    s->timer = (int)timer;
    /* The timer is in clock ticks (USER_HZ). */
    s->timer_ms = (uint32_t)(when * 1000 / (unsigned long)ticks_per_s);
    s->uid = uid;
    s->inode = (uint32_t)inode;
    return true;
}

static tp_err read_file(const char *path, int family, tp__diag_vec *out, tp_errinfo *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        int e = errno;
        char ebuf[128];
        return tp_errinfo_set(err, TP_ESYS, e, "%s: %s", path,
                              tp__errno_text(e, ebuf, sizeof ebuf));
    }
    long ticks = sysconf(_SC_CLK_TCK);
    if (ticks <= 0)
        ticks = 100;
    /* A line of /proc/net/tcp6 is about 180 bytes; getline() would allocate outside the
     * library's allocator. */
    char line[512];
    tp_err rc = TP_OK;
    tp_diag_socket s;
    while (fgets(line, sizeof line, f) != NULL) {
        if (!parse_line(line, family, ticks, &s))
            continue;
        tp_diag_socket *slot = tp__diag_vec_push(out);
        if (slot == NULL) {
            rc = tp_errinfo_set(err, TP_ENOMEM, ENOMEM, "out of memory reading %s", path);
            break;
        }
        *slot = s;
    }
    fclose(f);
    return rc;
}

tp_err tp__diag_procfs_dump(tp__diag_vec *out, tp_errinfo *err)
{
    tp_err rc = read_file("/proc/net/tcp", AF_INET, out, err);
    if (rc != TP_OK)
        return rc;
    /* No tcp6 file just means no IPv6 on this host. */
    if (access("/proc/net/tcp6", R_OK) != 0)
        return TP_OK;
    return read_file("/proc/net/tcp6", AF_INET6, out, err);
}
