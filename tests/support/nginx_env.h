/* tests/support/nginx_env.h: what the integration tests need to know about the nginx
 * that the ctest fixture "nginx" starts (scripts/nginx-test.sh, test nginx_start), read
 * from the file named by $TIDEPOOL_NGINX_ENV, and a way to restart or stop that nginx.
 *
 * What the three servers serve is listed at the top of scripts/nginx-test.sh. In short:
 * http_port has /, /close, /status, /big (1 MiB), /ka-hint, /echo and (chunked != 0)
 * /chunked with a 75 s keep-alive; http_short_ka_port has / with a 1 s keep-alive;
 * https_port has / and /big over TLS 1.2/1.3 for "localhost" and 127.0.0.1, signed by
 * ca_file; https_wrong_name_port serves / with a certificate from the same CA that names
 * only "wrong-name.invalid" (the host name mismatch test: a trusted chain, a wrong name);
 * https_mtls_port requires a client certificate and answers / with its subject;
 * https_h2_port and h2c_port speak HTTP/2 (TLS with ALPN, and cleartext by prior
 * knowledge) and send GOAWAY after 100 requests on a connection.
 * Every address is 127.0.0.1.
 *
 * A test that cannot load the file should skip (exit 77: the fixture marks the
 * integration tests with SKIP_RETURN_CODE 77), because it means nginx is not installed
 * or the test was started outside ctest. */
#ifndef TP_TEST_NGINX_ENV_H
#define TP_TEST_NGINX_ENV_H

#include <stdint.h>

/* The 13-byte body of "/" (and of /close, /ka-hint, /chunked). */
#define NGINX_BODY "hello, world\n"
/* Size of /big; its line k (16 bytes) is printf("%015d\n", k). */
#define NGINX_BIG_SIZE 1048576
/* The timeout the /ka-hint location announces and enforces, in seconds. */
#define NGINX_KA_HINT_S 3

typedef struct nginx_env {
    uint16_t http_port;             /* NGINX_HTTP_PORT: keepalive_timeout 75 s */
    uint16_t http_short_ka_port;    /* NGINX_HTTP_SHORT_KA_PORT: keepalive_timeout 1 s */
    uint16_t https_port;            /* NGINX_HTTPS_PORT */
    uint16_t https_wrong_name_port; /* NGINX_HTTPS_WRONG_NAME_PORT */
    int chunked;                    /* NGINX_CHUNKED: 1 when /chunked exists */
    char ca_file[512];              /* NGINX_CA_FILE: PEM of the CA that signed the server */
    char pid_file[512];             /* NGINX_PID_FILE */
    char dir[512];                  /* NGINX_DIR: the script's DIR argument, absolute */
    char unix_socket[512];          /* NGINX_UNIX_SOCKET: server 1 on a Unix socket */
    uint16_t https_mtls_port;       /* NGINX_HTTPS_MTLS_PORT: client certificate required */
    char client_cert[512];          /* NGINX_CLIENT_CERT: PEM, signed by ca_file */
    char client_key[512];           /* NGINX_CLIENT_KEY: its key, PEM */
    char client_key_encrypted[512]; /* NGINX_CLIENT_KEY_ENCRYPTED: passphrase "tidepool" */
    uint16_t https_h2_port;         /* NGINX_HTTPS_H2_PORT: TLS with HTTP/2 (ALPN h2),
                                       keepalive_requests 100 (then GOAWAY); /, /big,
                                       /uri (its own URI), /status, /echo */
    uint16_t h2c_port;              /* NGINX_H2C_PORT: the same, cleartext HTTP/2 with
                                       prior knowledge only */
} nginx_env;

/* Reads $TIDEPOOL_NGINX_ENV (KEY=VALUE lines written by nginx-test.sh start) into *out.
 * Returns 0 on success; -1 when the variable is unset, the file cannot be read, or a
 * port, the CA file or the directory is missing or malformed (a message on stderr says
 * which). Unknown keys are ignored. Thread-safe (no shared state). */
int nginx_env_load(nginx_env *out);

/* Runs `scripts/nginx-test.sh restart <dir>` and waits for it: nginx stops (its idle
 * keep-alive connections are closed by the server) and starts again on the same ports
 * with the same certificate; it also starts an nginx that nginx_env_stop() stopped.
 * Returns the script's exit status (0 success), or -1 if it could not be run. TLS session
 * tickets and the session cache do not survive a restart. Call from one thread at a time
 * (the tests that do hold RESOURCE_LOCK nginx). */
int nginx_env_restart(const nginx_env *e);

/* Runs `scripts/nginx-test.sh stop <dir>`: afterwards the ports refuse connections until
 * nginx_env_restart(). A test that stops nginx must restart it before it ends, or the
 * other integration tests fail. Returns as nginx_env_restart() does. */
int nginx_env_stop(const nginx_env *e);

#endif
