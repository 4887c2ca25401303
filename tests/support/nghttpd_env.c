/* nghttpd_env.c: starting and stopping a loopback nghttpd for the HTTP/2 tests. */
#include "nghttpd_env.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static bool have(const char *cmd)
{
    char line[256];
    snprintf(line, sizeof line, "command -v %s >/dev/null 2>&1", cmd);
    return system(line) == 0;
}

static bool write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static bool write_www(const nghttpd_env *e)
{
    char path[160];
    snprintf(path, sizeof path, "%s/www", e->dir);
    if (mkdir(path, 0755) != 0)
        return false;
    snprintf(path, sizeof path, "%s/www/hello", e->dir);
    if (!write_file(path, "hello, world\n", 13))
        return false;
    char *big = malloc(NGHTTPD_BIG_SIZE + 1);
    if (big == NULL)
        return false;
    for (int k = 0; k < NGHTTPD_BIG_SIZE / 16; k++)
        snprintf(big + 16 * k, 17, "%015d\n", k);
    snprintf(path, sizeof path, "%s/www/big", e->dir);
    bool ok = write_file(path, big, NGHTTPD_BIG_SIZE);
    free(big);
    return ok;
}

bool nghttpd_big_ok(const unsigned char *buf, size_t len, size_t off)
{
    char line[17];
    for (size_t i = 0; i < len; i++) {
        size_t at = off + i;
        snprintf(line, sizeof line, "%015d\n", (int)(at / 16));
        if (buf[i] != (unsigned char)line[at % 16])
            return false;
    }
    return true;
}

static bool make_cert(const nghttpd_env *e)
{
    char cmd[768];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-addext basicConstraints=critical,CA:TRUE "
             "-keyout %s/key.pem -out %s/cert.pem >%s/openssl.log 2>&1",
             e->dir, e->dir, e->dir);
    return system(cmd) == 0;
}

int nghttpd_start(nghttpd_env *e, bool tls, int max_streams)
{
    memset(e, 0, sizeof *e);
    e->pid = -1;
    if (!have("nghttpd") || (tls && !have("openssl")))
        return 77;
    snprintf(e->dir, sizeof e->dir, "/tmp/tp-nghttpd-XXXXXX");
    if (mkdtemp(e->dir) == NULL || !write_www(e) || (tls && !make_cert(e))) {
        fprintf(stderr, "nghttpd_env: preparing %s failed\n", e->dir);
        return 1;
    }
    e->tls = tls;
    snprintf(e->cert, sizeof e->cert, "%s/cert.pem", e->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        int lfd = tu_listen_loopback(AF_INET, 1, &e->port); /* a free port, given back */
        if (lfd < 0)
            return 1;
        close(lfd);
        char port[8], streams[32], www[96], key[96], log[96];
        snprintf(port, sizeof port, "%u", e->port);
        snprintf(streams, sizeof streams, "--max-concurrent-streams=%d",
                 max_streams > 0 ? max_streams : 100);
        snprintf(www, sizeof www, "--htdocs=%s/www", e->dir);
        snprintf(key, sizeof key, "%s/key.pem", e->dir);
        snprintf(log, sizeof log, "%s/nghttpd.log", e->dir);
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            /* It dies with the test: a failed assertion or a watchdog's kill skips
             * nghttpd_stop(), and a server left behind would outlive every run. */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
                _exit(127);
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            if (tls)
                execlp("nghttpd", "nghttpd", "--address=127.0.0.1", www, streams, "--echo-upload",
                       port, key, e->cert, (char *)NULL);
            else
                execlp("nghttpd", "nghttpd", "--address=127.0.0.1", www, streams, "--echo-upload",
                       "--no-tls", port, (char *)NULL);
            _exit(127);
        }
        e->pid = pid;
        for (int i = 0; i < 100; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(e->port)};
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            bool up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
            if (fd >= 0)
                close(fd);
            if (up)
                return 0;
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) { /* it died: the port was taken? */
                e->pid = -1;
                break;
            }
            tu_sleep_ms(20);
        }
        if (e->pid > 0) {
            kill(e->pid, SIGKILL);
            waitpid(e->pid, NULL, 0);
            e->pid = -1;
        }
    }
    fprintf(stderr, "nghttpd_env: nghttpd did not start (see %s/nghttpd.log)\n", e->dir);
    return 1;
}

void nghttpd_stop(nghttpd_env *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        e->pid = -1;
    }
    if (e->dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "nghttpd_env: could not remove %s\n", e->dir);
        e->dir[0] = '\0';
    }
}
