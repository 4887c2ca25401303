/* words.c: the kernel's reset reasons, errnos and processes in words people read. The
 * reasons are those of enum sk_rst_reason (include/net/rstreason.h), named as the
 * kernel's BTF names them; a reason this table does not know is still reported by its
 * kernel name. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ktrace_internal.h"

static const struct {
    const char *name;
    const char *text;
    bool process_context; /* sent from the closing process's own call */
} g_reasons[] = {
    {"NOT_SPECIFIED", "no reason given", false},
    {"NO_SOCKET",
     "segment for a connection this host does not have (closed, or never "
     "opened: nothing listens there)",
     false},
    {"TCP_INVALID_ACK_SEQUENCE", "ACK outside the window", false},
    {"TCP_RFC7323_PAWS", "segment failed the PAWS timestamp check", false},
    {"TCP_TOO_OLD_ACK", "ACK older than the window", false},
    {"TCP_ACK_UNSENT_DATA", "ACK of data never sent", false},
    {"TCP_FLAGS", "segment with unexpected flags", false},
    {"TCP_OLD_ACK", "old ACK", false},
    {"TCP_ABORT_ON_DATA", "data arrived after the socket was closed", false},
    {"TCP_TIMEWAIT_SOCKET", "segment for a TIME_WAIT entry", false},
    {"INVALID_SYN", "invalid SYN", false},
    {"TCP_ABORT_ON_CLOSE", "closed with unread data", true},
    {"TCP_ABORT_ON_LINGER", "orphaned FIN_WAIT2 aborted (tcp_fin_timeout / TCP_LINGER2)", false},
    {"TCP_ABORT_ON_MEMORY", "aborted: out of socket memory or too many orphans", false},
    {"TCP_STATE", "aborted by close with SO_LINGER 0 (or a disconnect)", true},
    {"TCP_KEEPALIVE_TIMEOUT", "keepalive probes went unanswered", false},
    {"TCP_DISCONNECT_WITH_DATA", "disconnected with data still in flight", true},
    {"ERROR", "reset after an internal error", false},
};

const char *tp_ktrace_reason_text(const char *reason_name)
{
    if (reason_name == NULL)
        return "unrecognised reason";
    for (size_t i = 0; i < sizeof g_reasons / sizeof g_reasons[0]; i++)
        if (strcmp(g_reasons[i].name, reason_name) == 0)
            return g_reasons[i].text;
    if (strncmp(reason_name, "MPTCP_", 6) == 0)
        return "MPTCP reset";
    return "unrecognised reason";
}

bool tp__ktrace_reason_process_context(const char *reason_name)
{
    if (reason_name == NULL)
        return false;
    for (size_t i = 0; i < sizeof g_reasons / sizeof g_reasons[0]; i++)
        if (strcmp(g_reasons[i].name, reason_name) == 0)
            return g_reasons[i].process_context;
    return false;
}

const char *tp__ktrace_errno_name(int err)
{
    /* The errors a TCP socket reports (sk_err), by name: glibc's strerrorname_np gives
     * the same, but not on every libc. */
    static const struct {
        int err;
        const char *name;
    } names[] = {
        {ECONNREFUSED, "ECONNREFUSED"},
        {ECONNRESET, "ECONNRESET"},
        {ETIMEDOUT, "ETIMEDOUT"},
        {EHOSTUNREACH, "EHOSTUNREACH"},
        {ENETUNREACH, "ENETUNREACH"},
        {EPIPE, "EPIPE"},
        {ECONNABORTED, "ECONNABORTED"},
        {EPROTO, "EPROTO"},
        {EMSGSIZE, "EMSGSIZE"},
        {ENETDOWN, "ENETDOWN"},
        {EHOSTDOWN, "EHOSTDOWN"},
        {EACCES, "EACCES"},
        {EPERM, "EPERM"},
        {ENOPROTOOPT, "ENOPROTOOPT"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].err == err)
            return names[i].name;
    return "EUNKNOWN";
}

const char *tp__ktrace_process_name(const tp_ktrace_process *p, const char *unknown, char *buf,
                                    size_t size)
{
    if (p->pid == 0)
        snprintf(buf, size, "%s", unknown);
    else
        snprintf(buf, size, "%s[%d]", p->comm, p->pid);
    return buf;
}
