/* wait.c: waiting for a socket with a deadline, the one blocking primitive under every
 * blocking call of src/net/ (connect, TLS handshake, read, write). Deadlines are
 * tp_clock_now() instants; poll() takes milliseconds, so the wait is rounded up and
 * re-checked, never returning before the deadline and never spinning just short of it. */
#include <errno.h>
#include <limits.h>
#include <poll.h>

#include "net/net.h"

/* Milliseconds for poll() until deadline: -1 for none, 0 if it passed, else rounded up. */
static int poll_timeout_ms(int64_t deadline, int64_t now)
{
    if (deadline == TP_DURATION_INFINITE)
        return -1;
    if (now >= deadline)
        return 0;
    int64_t ms = (deadline - now + TP_NSEC_PER_MSEC - 1) / TP_NSEC_PER_MSEC;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

tp_err tp__net_wait(int fd, int want, int64_t deadline, const char *what, const char *dest,
                    tp_errinfo *err)
{
    struct pollfd p = {.fd = fd, .events = 0, .revents = 0};
    if (want & TP__WANT_READ)
        p.events |= POLLIN;
    if (want & TP__WANT_WRITE)
        p.events |= POLLOUT;
    for (;;) {
        int64_t now = tp_clock_now();
        int ms = poll_timeout_ms(deadline, now);
        if (ms == 0)
            break;
        int r = poll(&p, 1, ms);
        if (r > 0)
            return TP_OK;
        if (r < 0 && errno != EINTR)
            return tp__net_error(errno, "poll", dest, err);
        /* r == 0 (timeout, maybe a rounding step early) or EINTR: look at the clock. */
    }
    if (what == NULL)
        what = "wait";
    if (dest != NULL && dest[0] != '\0')
        return tp_errinfo_set(err, TP_ETIMEDOUT, 0, "%s %s: timed out", what, dest);
    return tp_errinfo_set(err, TP_ETIMEDOUT, 0, "%s: timed out", what);
}
