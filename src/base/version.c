/* version.c: the version of the library actually linked. */
#include "base.h"

#define TP__STR2(x) #x
#define TP__STR(x) TP__STR2(x)

unsigned tp_version(void)
{
    return TP_VERSION_HEX;
}

const char *tp_version_string(void)
{
    return TP__STR(TP_VERSION_MAJOR) "." TP__STR(TP_VERSION_MINOR) "." TP__STR(TP_VERSION_PATCH);
}
