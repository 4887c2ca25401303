/* proxy_env.c: see proxy_env.h. */
#include "support/proxy_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int proxy_start(const char *auth, proxy_env *out)
{
    memset(out, 0, sizeof *out);
    char tmpl[] = "/tmp/tidepool-proxy-XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return perror("mkdtemp"), 1;
    snprintf(out->dir, sizeof out->dir, "%s", tmpl);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "bash %s/scripts/proxy-test.sh start %s %s", TIDEPOOL_SOURCE_DIR,
             out->dir, auth != NULL ? auth : "");
    int st = system(cmd);
    int rc = st == -1 ? 1 : WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    if (rc != 0) {
        rmdir(out->dir);
        return rc;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/env", out->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return perror(path), 1;
    char line[640];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "PROXY_PORT=", 11) == 0)
            out->port = (uint16_t)atoi(line + 11);
        else if (strncmp(line, "PROXY_LOG=", 10) == 0)
            snprintf(out->log, sizeof out->log, "%s", line + 10);
    }
    fclose(f);
    return out->port != 0 ? 0 : 1;
}

void proxy_stop(proxy_env *e)
{
    if (e->dir[0] == '\0')
        return;
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "bash %s/scripts/proxy-test.sh stop %s; rm -rf %s",
             TIDEPOOL_SOURCE_DIR, e->dir, e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "proxy_stop: %s failed\n", cmd);
    e->dir[0] = '\0';
}

int proxy_log_count(const proxy_env *e, const char *needle)
{
    FILE *f = fopen(e->log, "r");
    if (f == NULL)
        return 0;
    int n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}
