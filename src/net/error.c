/* error.c: the one place where a system errno from a socket call becomes a tp_err and a
 * message. Keeping the table here means connect, read and write failures read the same
 * everywhere ("connect to 127.0.0.1:8080: connection refused") and a caller can switch
 * on the code without knowing errno values. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"

/* Our wording for the errnos that have a code of their own: lower case, because they
 * end a sentence that starts with the operation, and explicit about the resource for
 * the local-exhaustion cases, which are the ones an operator must act on. */
static const char *known_text(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return "connection refused";
    case ENETUNREACH:
        return "network unreachable";
    case EHOSTUNREACH:
        return "host unreachable";
    case ENETDOWN:
        return "network down";
    case EHOSTDOWN:
        return "host down";
    case EADDRNOTAVAIL:
        return "ephemeral ports exhausted for this destination (EADDRNOTAVAIL)";
    case EMFILE:
        return "out of file descriptors (EMFILE: the process limit)";
    case ENFILE:
        return "out of file descriptors (ENFILE: the system limit)";
    case ECONNRESET:
        return "connection reset by peer";
    case EPIPE:
        return "connection closed by peer (EPIPE)";
    case ECONNABORTED:
        return "connection aborted";
    case ENOMEM:
        return "out of memory";
    case ENOBUFS:
        return "out of kernel buffer space (ENOBUFS)";
    default:
        return NULL;
    }
}

static tp_err code_of(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return TP_ECONNREFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
        return TP_EUNREACH;
    case EADDRNOTAVAIL:
        return TP_EPORTS;
    case EMFILE:
    case ENFILE:
        return TP_ENOFD;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
        return TP_ECONNRESET;
    case ENOMEM:
    case ENOBUFS:
        return TP_ENOMEM;
    default:
        return TP_EIO;
    }
}

/* The preposition that makes "<what> <prep> <dest>" read as English. */
static const char *prep_of(const char *what)
{
    if (strcmp(what, "read") == 0 || strcmp(what, "TLS read") == 0)
        return "from";
    if (strcmp(what, "socket") == 0 || strcmp(what, "setsockopt") == 0)
        return "for";
    if (strcmp(what, "TLS handshake") == 0)
        return "with";
    return "to";
}

const char *tp__errno_text(int e, char *buf, size_t cap)
{
#if defined(__GLIBC__)
    /* GNU strerror_r (we build with _GNU_SOURCE): returns the message, in buf or not. */
    return strerror_r(e, buf, cap);
#else
    if (strerror_r(e, buf, cap) != 0)
        snprintf(buf, cap, "errno %d", e);
    return buf;
#endif
}

tp_err tp__net_error(int e, const char *what, const char *dest, tp_errinfo *err)
{
    tp_err code = code_of(e);
    if (err == NULL)
        return code;
    if (what == NULL)
        what = "I/O";
    const char *text = known_text(e);
    char buf[128];
    if (text == NULL)
        text = tp__errno_text(e, buf, sizeof buf);
    if (dest != NULL && dest[0] != '\0')
        return tp_errinfo_set(err, code, e, "%s %s %s: %s", what, prep_of(what), dest, text);
    return tp_errinfo_set(err, code, e, "%s: %s", what, text);
}
