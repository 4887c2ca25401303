/* tests/support/pg_env.c: runs scripts/pg-test.sh for the PostgreSQL tests (see
 * pg_env.h). */
#include "support/pg_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TIDEPOOL_SOURCE_DIR
#define TIDEPOOL_SOURCE_DIR "."
#endif

static int script(const pg_env *e, const char *cmd)
{
    char line[768];
    snprintf(line, sizeof line, "'%s/scripts/pg-test.sh' %s '%s' >&2", TIDEPOOL_SOURCE_DIR,
             cmd, e->dir);
    int st = system(line);
    if (st == -1 || !WIFEXITED(st))
        return 1;
    return WEXITSTATUS(st);
}

static int read_port(pg_env *e)
{
    char path[300];
    snprintf(path, sizeof path, "%s/env", e->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 1;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "PG_PORT=", 8) == 0)
            e->port = atoi(line + 8);
    fclose(f);
    return e->port > 0 ? 0 : 1;
}

int pg_env_start(pg_env *e, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/tp-pg-%s-%ld", tmp != NULL && tmp[0] ? tmp : "/tmp",
             name, (long)getpid());
    e->port = 0;
    int rc = script(e, "start");
    return rc != 0 ? rc : read_port(e);
}

int pg_env_restart(pg_env *e)
{
    return script(e, "restart");
}

void pg_env_stop(pg_env *e)
{
    if (e->dir[0] == '\0')
        return;
    (void)script(e, "stop");
    char line[400];
    snprintf(line, sizeof line, "rm -rf '%s'", e->dir);
    if (system(line) != 0)
        fprintf(stderr, "pg_env: could not remove %s\n", e->dir);
}

const char *pg_env_conninfo(const pg_env *e, char *buf, size_t cap, const char *user,
                            const char *password, const char *db)
{
    snprintf(buf, cap, "host=127.0.0.1 port=%d user=%s dbname=%s%s%s", e->port, user, db,
             password != NULL ? " password=" : "", password != NULL ? password : "");
    return buf;
}
