/* tests/support/nginx_env.c: see nginx_env.h. */
#include "support/nginx_env.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef TIDEPOOL_SOURCE_DIR
#error "tests/CMakeLists.txt defines TIDEPOOL_SOURCE_DIR (the source tree) for the tests"
#endif

extern char **environ;

/* Parses a decimal port 1..65535 that fills the whole string. */
static int parse_port(const char *s, uint16_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int copy_value(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

/* Applies one KEY=VALUE line (newline already stripped) to *e. Returns -1 when the key is
 * known and the value malformed. */
static int apply_line(nginx_env *e, char *line)
{
    char *eq = strchr(line, '=');
    if (eq == NULL)
        return 0;
    *eq = '\0';
    const char *k = line, *v = eq + 1;
    if (strcmp(k, "NGINX_HTTP_PORT") == 0)
        return parse_port(v, &e->http_port);
    if (strcmp(k, "NGINX_HTTP_SHORT_KA_PORT") == 0)
        return parse_port(v, &e->http_short_ka_port);
    if (strcmp(k, "NGINX_HTTPS_PORT") == 0)
        return parse_port(v, &e->https_port);
    if (strcmp(k, "NGINX_HTTPS_WRONG_NAME_PORT") == 0)
        return parse_port(v, &e->https_wrong_name_port);
    if (strcmp(k, "NGINX_HTTPS_MTLS_PORT") == 0)
        return parse_port(v, &e->https_mtls_port);
    if (strcmp(k, "NGINX_HTTPS_H2_PORT") == 0)
        return parse_port(v, &e->https_h2_port);
    if (strcmp(k, "NGINX_H2C_PORT") == 0)
        return parse_port(v, &e->h2c_port);
    if (strcmp(k, "NGINX_CLIENT_CERT") == 0)
        return copy_value(e->client_cert, sizeof e->client_cert, v);
    if (strcmp(k, "NGINX_CLIENT_KEY") == 0)
        return copy_value(e->client_key, sizeof e->client_key, v);
    if (strcmp(k, "NGINX_CLIENT_KEY_ENCRYPTED") == 0)
        return copy_value(e->client_key_encrypted, sizeof e->client_key_encrypted, v);
    if (strcmp(k, "NGINX_CHUNKED") == 0) {
        e->chunked = strcmp(v, "1") == 0;
        return 0;
    }
    if (strcmp(k, "NGINX_CA_FILE") == 0)
        return copy_value(e->ca_file, sizeof e->ca_file, v);
    if (strcmp(k, "NGINX_PID_FILE") == 0)
        return copy_value(e->pid_file, sizeof e->pid_file, v);
    if (strcmp(k, "NGINX_DIR") == 0)
        return copy_value(e->dir, sizeof e->dir, v);
    if (strcmp(k, "NGINX_UNIX_SOCKET") == 0)
        return copy_value(e->unix_socket, sizeof e->unix_socket, v);
    return 0; /* newer keys: ignored, so old tests keep working */
}

int nginx_env_load(nginx_env *out)
{
    memset(out, 0, sizeof *out);
    const char *path = getenv("TIDEPOOL_NGINX_ENV");
    if (path == NULL || path[0] == '\0') {
        fprintf(stderr, "nginx_env: TIDEPOOL_NGINX_ENV is not set (run through ctest, "
                        "which starts nginx with the fixture test nginx_start)\n");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr,
                "nginx_env: cannot read %s: %s (is nginx installed? see the "
                "nginx_start test's output)\n",
                path, strerror(errno));
        return -1;
    }
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char copy[sizeof line];
        memcpy(copy, line, sizeof line);
        if (apply_line(out, line) != 0) {
            fprintf(stderr, "nginx_env: %s: bad line \"%s\"\n", path, copy);
            rc = -1;
        }
    }
    fclose(f);
    if (rc != 0)
        return -1;
    struct stat st;
    if (out->http_port == 0 || out->http_short_ka_port == 0 || out->https_port == 0 ||
        out->https_wrong_name_port == 0 || out->dir[0] == '\0' || out->ca_file[0] == '\0' ||
        stat(out->ca_file, &st) != 0) {
        fprintf(stderr, "nginx_env: %s lacks a port, NGINX_DIR or a readable CA file\n", path);
        return -1;
    }
    return 0;
}

/* Runs the script with one command and the fixture's directory; its output goes to the
 * test's stdout/stderr. posix_spawn rather than system(): no shell parses the path. */
static int run_script(const nginx_env *e, const char *cmd)
{
    char script[] = TIDEPOOL_SOURCE_DIR "/scripts/nginx-test.sh";
    char bash[] = "bash";
    char *argv[] = {bash, script, (char *)cmd, (char *)e->dir, NULL};
    pid_t pid;
    int err = posix_spawnp(&pid, "bash", NULL, NULL, argv, environ);
    if (err != 0) {
        fprintf(stderr, "nginx_env: cannot run %s: %s\n", script, strerror(err));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int nginx_env_restart(const nginx_env *e)
{
    return run_script(e, "restart");
}

int nginx_env_stop(const nginx_env *e)
{
    return run_script(e, "stop");
}
