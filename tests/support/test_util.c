/* tests/support/test_util.c: see test_util.h. */
#include "support/test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

int64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TP_NSEC_PER_SEC + ts.tv_nsec;
}

double tu_ms_since(int64_t start_ns)
{
    return (double)(tu_now_ns() - start_ns) / (double)TP_NSEC_PER_MSEC;
}

void tu_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ns / TP_NSEC_PER_SEC),
                          .tv_nsec = (long)(ns % TP_NSEC_PER_SEC)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void tu_sleep_ms(int64_t ms)
{
    tu_sleep_ns(ms * TP_NSEC_PER_MSEC);
}

void tu_key_stats(tp_pool *p, const char *key, tp_stats *out)
{
    memset(out, 0, sizeof *out);
    assert_int_equal(tp_pool_key_stats(p, key, strlen(key), out), TP_OK);
}

int64_t tu_key_waiters(tp_pool *p, const char *key)
{
    tp_stats st;
    if (tp_pool_key_stats(p, key, strlen(key), &st) != TP_OK)
        return -1;
    return st.waiters;
}

tp_stats tu_pool_stats(tp_pool *p)
{
    tp_stats st;
    memset(&st, 0, sizeof st);
    tp_pool_stats(p, &st);
    return st;
}

void tu_watchdog(unsigned seconds)
{
    alarm(seconds);
}

void tu_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    assert_int_equal(pthread_create(t, NULL, fn, arg), 0);
}

void tu_thread_join(pthread_t t)
{
    assert_int_equal(pthread_join(t, NULL), 0);
}

uint64_t tu_closes_total(const tp_stats *st)
{
    uint64_t n = 0;
    for (int i = 0; i < TP_CLOSE__COUNT; i++)
        n += st->closes[i];
    return n;
}

tp_pool *tu_pool_create(const tp_pool_options *o)
{
    tp_pool *p = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    tp_err r = tp_pool_create(o, &p, &err);
    if (r != TP_OK)
        print_error("tp_pool_create: %s: %s\n", tp_err_name(r), err.msg);
    assert_int_equal(r, TP_OK);
    assert_non_null(p);
    return p;
}

tp_conn *tu_acquire(tp_pool *p, const char *key, int64_t timeout)
{
    tp_conn *c = NULL;
    tp_errinfo err;
    memset(&err, 0, sizeof err);
    tp_err r = tp_pool_acquire(p, key, strlen(key), timeout, &c, &err);
    if (r != TP_OK)
        print_error("tp_pool_acquire(%s): %s: %s\n", key, tp_err_name(r), err.msg);
    assert_int_equal(r, TP_OK);
    assert_non_null(c);
    return c;
}

void *tu_acquire_thread(void *arg)
{
    tu_acq_job *job = arg;
    job->start_ns = tu_now_ns();
    job->result = tu_acquire_ex(job->p, job->key, strlen(job->key), job->timeout, job->flags,
                                &job->conn, &job->err);
    job->end_ns = tu_now_ns();
    atomic_store(&job->done, true);
    return NULL;
}

int tu_listen_loopback(int family, int backlog, uint16_t *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int tu_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}
