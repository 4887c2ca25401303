/* nghttpd_env.h: a throwaway nghttpd (Debian nghttp2-server) on loopback for the HTTP/2
 * tests, started and stopped by the test itself, what nghttpd_env.c defines.
 *
 * It serves DIR/www: /hello ("hello, world\n", 13 bytes) and /big (1 MiB: 65536 lines
 * of 16 bytes, line k = printf("%015d\n", k), as nginx's /big), and echoes a POST's body
 * (--echo-upload). Cleartext means HTTP/2 with prior knowledge (h2c); TLS uses a fresh
 * self-signed certificate for IP:127.0.0.1 (DIR/cert.pem, which the client trusts). */
#ifndef TP_TESTS_NGHTTPD_ENV_H
#define TP_TESTS_NGHTTPD_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct nghttpd_env {
    pid_t pid;
    uint16_t port;
    bool tls;
    char dir[64];
    char cert[96]; /* DIR/cert.pem when tls */
} nghttpd_env;

/* nghttpd_start: starts one; max_streams > 0 sets its SETTINGS_MAX_CONCURRENT_STREAMS.
 * 0 when it accepts connections; 77 when nghttpd or openssl is not installed (the
 * caller skips); 1 on any other failure (said on stderr). */
int nghttpd_start(nghttpd_env *e, bool tls, int max_streams);

/* nghttpd_stop: kills it (SIGKILL: a server that vanishes) and removes DIR. Safe twice. */
void nghttpd_stop(nghttpd_env *e);

/* nghttpd_big_ok: buf (len bytes from offset off of /big) is what /big holds there. */
bool nghttpd_big_ok(const unsigned char *buf, size_t len, size_t off);

#define NGHTTPD_BIG_SIZE 1048576

#endif
