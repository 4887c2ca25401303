/* tidepool/errors.h: the error codes every tidepool call returns, their names and
 * messages, and tp_errinfo, the optional caller-owned record of an error's detail.
 *
 * Codes are generated from one table (TP_ERR_MAP) so the enum, tp_strerror() and
 * tp_err_name() can never disagree. The table is append-only: a code keeps its number
 * forever and a retired code is never reused. */
#ifndef TIDEPOOL_ERRORS_H
#define TIDEPOOL_ERRORS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TP_EXTERN __attribute__((visibility("default")))
#define TP_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define TP_EXTERN
#define TP_WARN_UNUSED
#endif

/* XX(NAME, number, message). Append new codes at the end, with the next number. */
#define TP_ERR_MAP(XX)                                                                       \
    XX(EINVAL, -1, "invalid argument")                                                       \
    XX(ENOMEM, -2, "out of memory")                                                          \
    XX(ETIMEDOUT, -3, "timed out")                                                           \
    XX(ECLOSED, -4, "pool is closed")                                                        \
    XX(EBUSY, -5, "too many waiters for this key")                                           \
    XX(EAGAIN, -6, "no idle connection available without waiting")                          \
    XX(EOPEN, -7, "opening a connection failed")                                             \
    XX(EBREAKER, -8, "circuit breaker open for this key: recent opens failed")               \
    XX(ECANCELED, -9, "canceled")                                                            \
    XX(ESYS, -10, "system error")                                                            \
    XX(ELIMIT, -11, "limit reached")                                                         \
    XX(ESTATE, -12, "operation not valid in the current state")                              \
    XX(ECONNREFUSED, -13, "connection refused")                                              \
    XX(EUNREACH, -14, "network or host unreachable")                                         \
    XX(ERESOLVE, -15, "host name could not be resolved")                                     \
    XX(EPORTS, -16, "ephemeral ports exhausted for this destination")                        \
    XX(ENOFD, -17, "out of file descriptors")                                                \
    XX(ETLS, -18, "TLS handshake or I/O failed")                                             \
    XX(ECERT, -19, "TLS peer verification failed")                                           \
    XX(EPROTO, -20, "malformed or ambiguous response")                                       \
    XX(ECONNRESET, -21, "connection closed or reset by the peer")                            \
    XX(ETOOBIG, -22, "message exceeds a size limit")                                         \
    XX(EIO, -23, "I/O error")                                                                \
    XX(ECONNTIMEDOUT, -24, "connect timed out")                                              \
    XX(ETLSTIMEDOUT, -25, "TLS handshake timed out")                                         \
    XX(EHDRTIMEDOUT, -26, "timed out waiting for the response header")                       \
    XX(EREQTIMEDOUT, -27, "request deadline exceeded")                                       \
    XX(EQUOTA, -28, "tenant quota exceeded")                                                 \
    XX(ESERVERFULL, -29, "the server has no room for another connection")                    \
    XX(EUNAVAIL, -30, "the server is starting up or shutting down")                          \
    XX(EPROXY, -31, "the proxy refused or failed to open the tunnel")                        \
    XX(ERESET, -32, "the server reset the stream (HTTP/2 RST_STREAM)")                       \
    XX(ENOPERMIT, -33, "the shared connection budget refused a permit to open")

/* tp_err: 0 is success, every error is negative. */
typedef enum tp_err {
    TP_OK = 0,
#define TP__ERR_ENUM(name, num, msg) TP_##name = (num),
    TP_ERR_MAP(TP__ERR_ENUM)
#undef TP__ERR_ENUM
} tp_err;

/* Size of tp_errinfo.msg, including the terminating NUL. */
#define TP_ERRMSG_SIZE 256

/* tp_errinfo: detail of the last error of one call, filled when the caller passes one.
 * Owned by the caller, never allocated, never global: thread-safe by construction.
 * code is the tp_err returned; sys_errno the system errno behind it (0 if none);
 * backend_code a connector-specific code (SQLSTATE class, TLS error, ...; 0 if none);
 * msg a NUL-terminated human-readable explanation that never contains credentials. */
typedef struct tp_errinfo {
    tp_err code;
    int sys_errno;
    int backend_code;
    char msg[TP_ERRMSG_SIZE];
} tp_errinfo;

/* tp_strerror: a static, never NULL, English message for err ("unknown error" for a code
 * this version does not know). Thread-safe. */
TP_EXTERN const char *tp_strerror(int err);

/* tp_err_name: the static name of err, e.g. "TP_ETIMEDOUT" ("TP_UNKNOWN" if unknown). */
TP_EXTERN const char *tp_err_name(int err);

/* tp_errinfo_clear: resets info to "no error" (NULL is a no-op). */
TP_EXTERN void tp_errinfo_clear(tp_errinfo *info);

/* tp_errinfo_set: fills info (NULL is a no-op) with code, sys_errno and a printf-style
 * message; returns code so that error paths can `return tp_errinfo_set(...)`.
 * Connectors use it to report why an open or check failed. */
TP_EXTERN tp_err tp_errinfo_set(tp_errinfo *info, tp_err code, int sys_errno, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
