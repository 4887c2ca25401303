/* tools/bench_server_scheduled.c: the built-in benchmark server's answers under a
 * capacity schedule (bench_server_start_ex with workers or phases; one loop only). A
 * complete request is not answered at once: it goes into the bench_sched queue and the
 * connection is not read until its answer, written when the schedule says it is due, has
 * gone out. A timerfd armed at the schedule's next deadline wakes the loop; answers and
 * phases are handled after each round of events (bench_server__run_schedule). */
#include "bench_server_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

static const char resp_keep[] = BENCH_SERVER_RESPONSE;
static const char resp_close[] = BENCH_SERVER_RESPONSE_CLOSE;

int64_t bench_server__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Scheduled mode: takes the first complete request of data[0..len) into the schedule and
 * keeps the rest in c->keep (c->keep must be empty). Leaves the connection unread while the
 * request is in the schedule. Returns -1 when the connection must close now. */
int bench_server__take_one(sloop *w, bconn *c, const char *data, size_t len)
{
    size_t pos = c->skip < len ? c->skip : len;
    c->skip -= pos;
    const char *hend =
        c->skip == 0 && len > pos ? memmem(data + pos, len - pos, "\r\n\r\n", 4) : NULL;
    if (hend != NULL) {
        size_t body, hl = (size_t)(hend - (data + pos)) + 4;
        if (bench_server__scan_headers(data + pos, hl - 2, &body, &c->resp_close, &c->resp_head) !=
            0)
            return -1;
        pos += hl;
        c->skip = body;
    }
    size_t rest = hend != NULL && c->resp_close ? 0 : len - pos;
    if (hend == NULL && rest > MAX_HEADER)
        return -1;
    if (bench_server__keep(c, data + pos, rest) != 0)
        return -1;
    if (hend == NULL)
        return 0;
    if (bench_server__set_interest(w, c, 0) != 0)
        return -1;
    c->in_sched = true;
    bench_sched_submit(w->sched, &c->si);
    return 0;
}

/* Scheduled mode, nothing pending on c: takes its next kept request, or reads on. */
void bench_server__next_request(sloop *w, bconn *c)
{
    char *data = c->keep;
    size_t len = c->keep_len;
    c->keep = NULL;
    c->keep_len = 0;
    int rc = bench_server__take_one(w, c, data, len);
    free(data);
    if (rc != 0 || (!c->in_sched && bench_server__set_interest(w, c, EPOLLIN) != 0))
        bench_server__conn_close(w, c);
}

/* Scheduled mode: the answer to c's request is due. */
static void on_served(sloop *w, bconn *c)
{
    c->in_sched = false;
    if (c->gone) {
        bench_server__conn_close(w, c);
        return;
    }
    const char *r = c->resp_close ? resp_close : resp_keep;
    size_t rl = (c->resp_close ? sizeof resp_close : sizeof resp_keep) - 1;
    if (c->resp_head)
        rl -= sizeof BENCH_SERVER_BODY - 1;
    c->close_after = c->resp_close;
    if (bench_server__send_or_keep(c, r, rl) != 0)
        bench_server__conn_close(w, c);
    else if (c->out != NULL)
        bench_server__settle(w, c, false); /* on EPOLLOUT, bench_server__on_writable() goes on */
    else if (c->close_after)
        bench_server__conn_close(w, c);
    else
        bench_server__next_request(w, c);
}

/* Scheduled mode: answers what is due, then arms the timer for what comes next. */
void bench_server__run_schedule(sloop *w)
{
    bench_sched_item *it;
    while ((it = bench_sched_due(w->sched, bench_server__now_ns())) != NULL)
        on_served(w, (bconn *)(void *)((char *)it - offsetof(bconn, si)));
    int64_t d = bench_sched_deadline(w->sched);
    struct itimerspec t = {{0, 0}, {0, 0}}; /* all zero disarms */
    if (d != INT64_MAX) {
        t.it_value.tv_sec = d / 1000000000;
        t.it_value.tv_nsec = d % 1000000000;
        if (t.it_value.tv_sec == 0 && t.it_value.tv_nsec == 0)
            t.it_value.tv_nsec = 1;
    }
    timerfd_settime(w->timer_fd, TFD_TIMER_ABSTIME, &t, NULL);
}
