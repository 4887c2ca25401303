/* engine_fd.c: the event engine's descriptor table: which request owns each socket
 * (the loop dispatches epoll events through it) and which connection each socket was
 * registered for, so that a connection back in the pool keeps its registration for the
 * next request on it. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#include "engine.h"

tp_err tp__eng_watch(tp_http_engine *e, eng_req *rq, int fd, uint64_t conn_id, tp_errinfo *err)
{
    if ((size_t)fd >= e->nfds) {
        size_t n = TP__MAX((size_t)fd + 1, e->nfds * 2);
        fd_slot *t = tp__realloc(e->fds, n * sizeof *t);
        if (t == NULL)
            return tp_errinfo_set(err, TP_ENOMEM, 0, "growing the engine's descriptor table");
        memset(t + e->nfds, 0, (n - e->nfds) * sizeof *t);
        e->fds = t;
        e->nfds = n;
    }
    fd_slot *s = &e->fds[fd];
    if (s->conn_id != conn_id) {
        /* Edge-triggered, all directions: the connection stays registered while it is
         * idle in the pool, so the next request on it (usually ours again: the pool gives
         * a thread back the connection it released) needs no epoll_ctl. A descriptor
         * number reused for another connection is told apart by conn_id. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.u64 = (uint64_t)fd};
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
            (errno != EEXIST || epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev) != 0))
            return tp_errinfo_set(err, errno == ENOMEM ? TP_ENOMEM : TP_ESYS, errno,
                                  "epoll_ctl refused the socket");
        s->conn_id = conn_id;
    }
    s->owner = rq;
    return TP_OK;
}

void tp__eng_unwatch(tp_http_engine *e, int fd, bool forget)
{
    if (fd < 0 || (size_t)fd >= e->nfds)
        return;
    e->fds[fd].owner = NULL;
    if (forget) {
        /* The descriptor is about to be closed (or handed to a close): epoll forgets it
         * by itself then, but a number reused before that must not match. */
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
        e->fds[fd].conn_id = 0;
    }
}

/* ---- cross-thread queues ----------------------------------------------------------- */
