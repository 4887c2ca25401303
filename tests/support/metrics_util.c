/* tests/support/metrics_util.c: see metrics_util.h. */
#include "support/metrics_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tidepool/metrics.h>

extern char **environ;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends all of buf, or fails. */
static int send_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

int mu_http(int port, const char *method, const char *path, const char *body, int timeout_ms,
            char **head, char **resp_body)
{
    if (head != NULL)
        *head = NULL;
    if (resp_body != NULL)
        *resp_body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char req[1024];
    size_t blen = body != NULL ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, port, blen);
    if (n <= 0 || (size_t)n >= sizeof req || send_all(fd, req, (size_t)n) != 0 ||
        (blen > 0 && send_all(fd, body, blen) != 0)) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int64_t end = now_ms() + timeout_ms;
    while (buf != NULL && now_ms() < end) {
        if (len + 1 == cap) {
            if (cap >= ((size_t)4 << 20))
                break;
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (buf == NULL)
        return -1;
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    int status = -1;
    if (sep == NULL || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        free(buf);
        return -1;
    }
    if (resp_body != NULL)
        *resp_body = strdup(sep + 4);
    sep[2] = '\0';
    if (head != NULL)
        *head = strdup(buf);
    free(buf);
    return status;
}

bool mu_header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *line = head; line != NULL && *line != '\0';) {
        const char *eol = strstr(line, "\r\n");
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vn = eol != NULL ? (size_t)(eol - v) : strlen(v);
            if (vn >= cap)
                vn = cap - 1;
            memcpy(out, v, vn);
            out[vn] = '\0';
            return true;
        }
        line = eol != NULL ? eol + 2 : NULL;
    }
    return false;
}

bool mu_which(const char *prog, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, path, prog) < cap &&
            access(out, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

int mu_run_stdin(char *const argv[], const char *in_path, char **output)
{
    *output = NULL;
    char dir[256], out_path[300];
    if (mu_tmpdir(dir, sizeof dir) != 0)
        return -1;
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_path, O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = -1;
    if (rc == 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        *output = mu_read_file(out_path);
    }
    mu_rmtree(dir);
    return status;
}

int mu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int mu_tmpdir(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    if ((size_t)snprintf(out, cap, "%s/tp-metrics-XXXXXX", base) >= cap)
        return -1;
    return mkdtemp(out) != NULL ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int mu_rmtree(const char *dir)
{
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int mu_write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

char *mu_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        if (r == 0)
            break;
        len += r;
    }
    fclose(f);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

bool mu_prom_value(const char *text, const char *series, double *out)
{
    size_t sn = strlen(series);
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *eol = strchr(line, '\n');
        if (line[0] != '#' && strncmp(line, series, sn) == 0 && line[sn] == ' ') {
            const char *v = line + sn + 1;
            *out = strncmp(v, "+Inf", 4) == 0 ? INFINITY : strtod(v, NULL);
            return true;
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    return false;
}

size_t mu_count(const char *hay, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + nl, needle))
        n++;
    return n;
}

bool mu_have_exporter(void)
{
    tp_metrics *m = NULL;
    tp_metrics_exporter *e = NULL;
    tp_errinfo err;
    bool have = true;
    if (tp_metrics_create(NULL, &m, &err) == TP_OK &&
        tp_metrics_serve(m, "127.0.0.1:0", &e, &err) == TP_ESTATE) {
        printf("built without libmicrohttpd (%s): skipped\n", err.msg);
        have = false;
    }
    tp_metrics_exporter_stop(e);
    tp_metrics_destroy(m);
    return have;
}
