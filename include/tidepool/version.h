/* tidepool/version.h: the version of the headers, and of the library linked at run time.
 * Versions with the same major number are ABI compatible. */
#ifndef TIDEPOOL_VERSION_H
#define TIDEPOOL_VERSION_H

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_VERSION_MAJOR 0
#define TP_VERSION_MINOR 1
#define TP_VERSION_PATCH 0
#define TP_VERSION_HEX ((TP_VERSION_MAJOR << 16) | (TP_VERSION_MINOR << 8) | TP_VERSION_PATCH)

/* tp_version: TP_VERSION_HEX of the library linked at run time. */
TP_EXTERN unsigned tp_version(void);

/* tp_version_string: "MAJOR.MINOR.PATCH" of the library linked at run time (static). */
TP_EXTERN const char *tp_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
