/* tests/support/pg_env.h: a throwaway PostgreSQL cluster per test program, run by
 * scripts/pg-test.sh (see it for the roles, databases and settings tests rely on).
 * No libpq here: only the script, its env file and conninfo strings, so every test
 * links this file whether or not libpq is installed. */
#ifndef TP_TEST_PG_ENV_H
#define TP_TEST_PG_ENV_H

#include <stddef.h>

typedef struct pg_env {
    char dir[256];
    int port;
} pg_env;

/* The password the script gives role tenant_b. */
#define PG_ENV_TENANT_PASSWORD "tenant-b-Secr3t"

/* Starts a fresh cluster in a directory of its own (name makes it unique per test).
 * Returns 0, 77 when PostgreSQL is not installed, or another exit status on failure. */
int pg_env_start(pg_env *e, const char *name);
/* Restarts it on the same port (fast shutdown: sessions are terminated). 0 on success. */
int pg_env_restart(pg_env *e);
/* Stops it and removes its directory. */
void pg_env_stop(pg_env *e);
/* Formats a conninfo for user (password NULL: none) and database into buf. */
const char *pg_env_conninfo(const pg_env *e, char *buf, size_t cap, const char *user,
                            const char *password, const char *db);

#endif
