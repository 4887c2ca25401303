/* h2_steps.c: the HTTP/2 session tests' shared steps (h2_steps.h). */
#include "h2_steps.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "net/net.h"

tp__h2_stream *h2t_get(tp__h2 *h, const char *path)
{
    tp__h2_request rq = {.method = "GET", .scheme = "http", .authority = "127.0.0.1", .path = path};
    tp__h2_stream *st = NULL;
    tp_errinfo ei;
    tp_err rc = tp__h2_submit(h, &rq, &st, &ei);
    if (rc != TP_OK)
        fail_msg("submit %s: %s (%s)", path, tp_err_name(rc), ei.msg);
    return st;
}

int h2t_step(tp__h2 *h, const char *what)
{
    int want = 0;
    tp_errinfo ei;
    if (tp__h2_step(h, &want, &ei) != TP_OK)
        fail_msg("step while waiting for %s: %s", what, ei.msg);
    return want;
}

void h2t_wait(tp__h2 *h, int want, int64_t deadline, const char *what)
{
    tp_errinfo ei;
    if (tp__net_wait(tp__h2_fd(h), want, deadline, "test", "server", &ei) != TP_OK)
        fail_msg("waiting for %s: %s", what, ei.msg);
}
