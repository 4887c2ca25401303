/* slow_dns.c: see slow_dns.h. The server is one thread with one UDP socket; a delayed
 * answer waits in a small queue, so a slow name never delays another name's answer
 * (glibc sends the A and AAAA queries of one lookup together, and other lookups run on
 * other threads meanwhile). */
#define _GNU_SOURCE
#include "support/slow_dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/test_util.h"

#define NS_ENV "TIDEPOOL_SLOW_DNS_NS"
#define MAX_NAMES 16
#define MAX_PENDING 64

static struct {
    int fd;
    int slow_ms;
    atomic_bool stop;
    pthread_t thread;
    pthread_mutex_t mu; /* guards names and counts */
    char names[MAX_NAMES][64];
    int counts[MAX_NAMES];
    struct pending {
        int64_t due;
        struct sockaddr_in to;
        size_t len;
        unsigned char buf[512];
    } pending[MAX_PENDING];
    int npending;
} srv = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

int slow_dns_enter_namespace(char **argv)
{
    if (getenv(NS_ENV) == NULL) {
        if (geteuid() != 0) {
            fprintf(stderr, "slow_dns: needs root (a mount namespace, port 53): skipped\n");
            return 77;
        }
        setenv(NS_ENV, "1", 1);
        /* argv[0] as ctest gave it: a path, so execvp of unshare finds it again. */
        char *args[64] = {"unshare", "--mount", "--propagation", "private"};
        int n = 4;
        for (int i = 0; argv[i] != NULL && n < 63; i++)
            args[n++] = argv[i];
        args[n] = NULL;
        execvp("unshare", args);
        fprintf(stderr, "slow_dns: exec unshare: %s: skipped\n", strerror(errno));
        return 77;
    }
    char path[] = "/tmp/tidepool-resolv-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "slow_dns: mkstemp: %s\n", strerror(errno));
        return 77;
    }
    /* One attempt, a timeout past the slow answer: the resolver waits for it. */
    const char conf[] = "nameserver " SLOW_DNS_ADDR "\noptions timeout:5 attempts:1\n";
    bool ok = write(fd, conf, sizeof conf - 1) == (ssize_t)(sizeof conf - 1);
    close(fd);
    if (!ok || mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0) {
        fprintf(stderr, "slow_dns: bind-mounting over /etc/resolv.conf: %s: skipped\n",
                strerror(errno));
        unlink(path);
        return 77;
    }
    unlink(path); /* the mount keeps the file alive; nothing is left behind */
    return 0;
}

static int64_t now_ms(void)
{
    return tu_now_ns() / 1000000;
}

/* The query's name, dotted, lower-case; the offset past the question; 0 if malformed. */
static size_t parse_question(const unsigned char *q, size_t n, char *name, size_t cap,
                             unsigned *qtype)
{
    size_t off = 12, w = 0;
    while (off < n && q[off] != 0) {
        size_t l = q[off++];
        if (l > 63 || off + l > n || w + l + 2 > cap)
            return 0;
        if (w > 0)
            name[w++] = '.';
        for (size_t i = 0; i < l; i++) {
            unsigned char ch = q[off + i];
            name[w++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        off += l;
    }
    name[w] = '\0';
    if (off + 5 > n)
        return 0;
    *qtype = (unsigned)q[off + 1] << 8 | q[off + 2];
    return off + 5;
}

static void count(const char *name)
{
    pthread_mutex_lock(&srv.mu);
    int i = 0;
    while (i < MAX_NAMES && srv.names[i][0] != '\0' && strcmp(srv.names[i], name) != 0)
        i++;
    if (i < MAX_NAMES) {
        snprintf(srv.names[i], sizeof srv.names[i], "%s", name);
        srv.counts[i]++;
    }
    pthread_mutex_unlock(&srv.mu);
}

int slow_dns_queries(const char *name)
{
    int n = 0;
    pthread_mutex_lock(&srv.mu);
    for (int i = 0; i < MAX_NAMES; i++)
        if (strcmp(srv.names[i], name) == 0)
            n = srv.counts[i];
    pthread_mutex_unlock(&srv.mu);
    return n;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Builds the answer to query q (n bytes) in p; false for a query not answered. */
static bool answer(const unsigned char *q, size_t n, struct pending *p, int64_t now)
{
    char name[256];
    unsigned qtype = 0;
    size_t qend = parse_question(q, n, name, sizeof name, &qtype);
    if (qend == 0 || qend > 200)
        return false;
    unsigned char *r = p->buf;
    memcpy(r, q, qend);
    r[2] = 0x84 | (q[2] & 0x01); /* QR, AA, the query's RD */
    r[3] = 0x80;                 /* RA, NOERROR */
    memset(r + 6, 0, 6);         /* no answer, authority or additional records yet */
    size_t len = qend;
    p->due = now;
    bool known = ends_with(name, ".test");
    if (qtype == 1)
        count(name);
    if (!known || strcmp(name, "nx.test") == 0) {
        r[3] = 0x83; /* NXDOMAIN */
    } else if (qtype == 1) {
        static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
        memcpy(r + len, rr, sizeof rr);
        len += sizeof rr;
        r[7] = 1; /* one answer */
        if (strcmp(name, "slow.test") == 0)
            p->due = now + srv.slow_ms;
    }
    p->len = len;
    return true;
}

static void *serve(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        int64_t now = now_ms();
        int timeout = 50;
        for (int i = 0; i < srv.npending; i++) {
            if (srv.pending[i].due <= now) {
                (void)sendto(srv.fd, srv.pending[i].buf, srv.pending[i].len, 0,
                             (struct sockaddr *)&srv.pending[i].to, sizeof srv.pending[i].to);
                srv.pending[i--] = srv.pending[--srv.npending];
            } else if (srv.pending[i].due - now < timeout) {
                timeout = (int)(srv.pending[i].due - now);
            }
        }
        struct pollfd pfd = {.fd = srv.fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout) <= 0)
            continue;
        unsigned char q[512];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(srv.fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 12 || srv.npending == MAX_PENDING)
            continue;
        struct pending *p = &srv.pending[srv.npending];
        if (answer(q, (size_t)n, p, now_ms())) {
            p->to = from;
            srv.npending++;
        }
    }
    return NULL;
}

bool slow_dns_start(int slow_ms)
{
    srv.slow_ms = slow_ms;
    srv.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(srv.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, SLOW_DNS_ADDR, &a.sin_addr);
    if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "slow_dns: bind %s:53: %s\n", SLOW_DNS_ADDR, strerror(errno));
        if (srv.fd >= 0)
            close(srv.fd);
        srv.fd = -1;
        return false;
    }
    atomic_store(&srv.stop, false);
    return pthread_create(&srv.thread, NULL, serve, NULL) == 0;
}

void slow_dns_stop(void)
{
    if (srv.fd < 0)
        return;
    atomic_store(&srv.stop, true);
    pthread_join(srv.thread, NULL);
    close(srv.fd);
    srv.fd = -1;
}
