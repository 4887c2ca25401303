/* errors.c: messages and names for tp_err and tp_close_reason, and tp_errinfo helpers.
 * Both lookups are switches without a default case so that -Wswitch flags a code added
 * to the table but not here (it cannot happen: the cases are generated from the table). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base.h"

const char *tp_strerror(int err)
{
    if (err == TP_OK)
        return "success";
    switch ((tp_err)err) {
#define TP__ERR_MSG(name, num, msg)                                                                \
    case TP_##name:                                                                                \
        return msg;
        TP_ERR_MAP(TP__ERR_MSG)
#undef TP__ERR_MSG
    case TP_OK:
        break;
    }
    return "unknown error";
}

const char *tp_err_name(int err)
{
    if (err == TP_OK)
        return "TP_OK";
    switch ((tp_err)err) {
#define TP__ERR_NAME(name, num, msg)                                                               \
    case TP_##name:                                                                                \
        return "TP_" #name;
        TP_ERR_MAP(TP__ERR_NAME)
#undef TP__ERR_NAME
    case TP_OK:
        break;
    }
    return "TP_UNKNOWN";
}

const char *tp_close_reason_name(int reason)
{
    switch ((tp_close_reason)reason) {
#define TP__CLOSE_NAME(name, num, str)                                                             \
    case TP_CLOSE_##name:                                                                          \
        return str;
        TP_CLOSE_REASON_MAP(TP__CLOSE_NAME)
#undef TP__CLOSE_NAME
    case TP_CLOSE__COUNT:
        break;
    }
    return "unknown";
}

void tp_errinfo_clear(tp_errinfo *info)
{
    if (info == NULL)
        return;
    info->code = TP_OK;
    info->sys_errno = 0;
    info->backend_code = 0;
    info->msg[0] = '\0';
}

tp_err tp_errinfo_set(tp_errinfo *info, tp_err code, int sys_errno, const char *fmt, ...)
{
    if (info == NULL)
        return code;
    info->code = code;
    info->sys_errno = sys_errno;
    info->backend_code = 0;
    if (fmt == NULL) {
        snprintf(info->msg, sizeof info->msg, "%s", tp_strerror(code));
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->msg, sizeof info->msg, fmt, ap);
    va_end(ap);
    return code;
}
