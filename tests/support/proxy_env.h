/* tests/support/proxy_env.h: a throwaway tinyproxy for one test (scripts/proxy-test.sh),
 * started in a directory of the test's own, and the count of what it logged. */
#ifndef TP_TEST_PROXY_ENV_H
#define TP_TEST_PROXY_ENV_H

#include <stdint.h>

typedef struct proxy_env {
    char dir[512];
    uint16_t port;
    char log[700];
} proxy_env;

/* proxy_start: a proxy on 127.0.0.1 in a fresh directory under /tmp, demanding the
 * Basic credentials auth ("user:password", alphanumeric) unless NULL. Returns 0, 77
 * (tinyproxy is not installed: skip) or another non-zero status (message on stderr). */
int proxy_start(const char *auth, proxy_env *out);
/* proxy_stop: stops it and removes its directory. */
void proxy_stop(proxy_env *e);
/* proxy_log_count: the lines of its log that contain needle (e.g. "CONNECT host:port"). */
int proxy_log_count(const proxy_env *e, const char *needle);

#endif
