/* tests/support/outage_load.c: see outage_load.h. */
#include "support/outage_load.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test_util.h"

typedef struct ol_shared {
    ol_op_fn op;
    ol_probe_fn probe;
    void *ud;
    atomic_bool stop;
    atomic_bool faulting;     /* set just before fault() runs */
    _Atomic int64_t down_at;  /* tu_now_ns() of the probe's first "no" after the fault; 0 */
    _Atomic int64_t up_at;    /* its next "yes"; 0 */
} ol_shared;

typedef struct ol_worker {
    ol_shared *sh;
    int index;
    pthread_t t;
    uint64_t ok, failed, by_code[64];
    int64_t first_ok_after_down; /* end of the earliest success that started in the outage */
} ol_worker;

static void *worker_main(void *arg)
{
    ol_worker *w = arg;
    ol_shared *sh = w->sh;
    while (!atomic_load(&sh->stop)) {
        int64_t start = tu_now_ns();
        int64_t down = atomic_load(&sh->down_at);
        tp_err rc = sh->op(sh->ud, w->index);
        int64_t end = tu_now_ns();
        if (rc != TP_OK) {
            w->failed++;
            w->by_code[(-rc) & 63]++;
            continue;
        }
        w->ok++;
        if (down != 0 && start >= down && (w->first_ok_after_down == 0 || end < w->first_ok_after_down))
            w->first_ok_after_down = end;
    }
    return NULL;
}

/* The longest probe whose answer is believed, in ms. */
#define PROBE_TRUST_MS 20

static void *probe_main(void *arg)
{
    ol_shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        if (atomic_load(&sh->faulting) && atomic_load(&sh->up_at) == 0) {
            int64_t asked = tu_now_ns();
            bool up = sh->probe(sh->ud);
            int64_t now = tu_now_ns();
            /* A slow answer (a connect stuck in a dying server's backlog) does not say
             * when the state changed: ask again. */
            if (now - asked > MS(PROBE_TRUST_MS))
                continue;
            if (!up && atomic_load(&sh->down_at) == 0)
                atomic_store(&sh->down_at, now);
            else if (up && atomic_load(&sh->down_at) != 0)
                atomic_store(&sh->up_at, now);
        }
        tu_sleep_ms(1);
    }
    return NULL;
}

void ol_run(int workers, int64_t before_ms, int64_t after_ms, ol_op_fn op, ol_probe_fn probe,
            ol_fault_fn fault, void *ud, ol_result *out)
{
    memset(out, 0, sizeof *out);
    if (workers > OL_MAX_WORKERS)
        workers = OL_MAX_WORKERS;
    ol_shared sh = {.op = op, .probe = probe, .ud = ud};
    ol_worker w[OL_MAX_WORKERS];
    memset(w, 0, sizeof w);
    pthread_t pt;
    tu_thread_start(&pt, probe_main, &sh);
    for (int i = 0; i < workers; i++) {
        w[i].sh = &sh;
        w[i].index = i;
        tu_thread_start(&w[i].t, worker_main, &w[i]);
    }
    tu_sleep_ms(before_ms);
    atomic_store(&sh.faulting, true);
    out->fault_status = fault(ud);
    tu_sleep_ms(after_ms);
    atomic_store(&sh.stop, true);
    int64_t first_ok = 0;
    for (int i = 0; i < workers; i++) {
        tu_thread_join(w[i].t);
        out->ok += w[i].ok;
        out->failed += w[i].failed;
        for (int k = 0; k < 64; k++)
            out->by_code[k] += w[i].by_code[k];
        if (w[i].first_ok_after_down != 0 && (first_ok == 0 || w[i].first_ok_after_down < first_ok))
            first_ok = w[i].first_ok_after_down;
    }
    tu_thread_join(pt);
    int64_t down = atomic_load(&sh.down_at), up = atomic_load(&sh.up_at);
    out->outage_seen = down != 0 && up != 0;
    out->outage_ms = out->outage_seen ? (double)(up - down) / 1e6 : 0.0;
    out->recovered = first_ok != 0;
    out->recovery_ms = out->outage_seen && first_ok != 0 ? (double)(first_ok - up) / 1e6 : 0.0;
}

void ol_print(const char *what, const ol_result *r)
{
    fprintf(stderr, "%s: %llu ok, %llu failed; outage %s %.1f ms, recovery %.1f ms after\n", what,
            (unsigned long long)r->ok, (unsigned long long)r->failed,
            r->outage_seen ? "seen," : "not seen by the probe,", r->outage_ms, r->recovery_ms);
    for (int k = 1; k < 64; k++)
        if (r->by_code[k] > 0)
            fprintf(stderr, "  %llu x %s\n", (unsigned long long)r->by_code[k], tp_err_name(-k));
}

void ol_assert_restart(const ol_result *r, int workers, uint64_t min_ok, uint64_t rejects_breaker,
                       double bound_ms, bool must_see)
{
    assert_int_equal(r->fault_status, 0);
    assert_true(r->ok > min_ok);
    assert_true(r->failed <= 2 * (uint64_t)workers);
    assert_int_equal(r->by_code[-TP_EBREAKER], 0);
    assert_int_equal(rejects_breaker, 0);
    assert_true(r->recovered);
    if (must_see)
        assert_true(r->outage_seen);
    if (r->outage_seen)
        assert_true(r->recovery_ms < bound_ms);
}

bool ol_probe_tcp_http(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool up = false;
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char buf[16];
        up = poll(&p, 1, 100) == 1 && recv(fd, buf, sizeof buf, 0) >= 12 &&
             memcmp(buf, "HTTP/1.", 7) == 0;
    }
    close(fd);
    return up;
}
