/* fleet_backends.c: what PostgreSQL still has of an instance of a fleet budget
 * (tp_pg_fleet_backends): its backends, by the application_name every connection of
 * the instance carries. The budget holds a lapsed instance's permits back until this
 * says 0, so a paused or partitioned client whose backends the server keeps is not
 * replaced by new ones beyond max_connections. */
#ifdef TIDEPOOL_HAVE_LIBPQ
#include <stdio.h>
#include <stdlib.h>

#include "pg/pg_internal.h"

int64_t tp_pg_fleet_backends(void *conninfo, const char *instance)
{
    if (conninfo == NULL || instance == NULL)
        return -1;
    PGconn *c = PQconnectdb((const char *)conninfo);
    int64_t n = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        char name[160];
        snprintf(name, sizeof name, "tidepool/%s", instance);
        const char *params[1] = {name};
        PGresult *r =
            PQexecParams(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", 1,
                         NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    PQfinish(c);
    return n;
}

#endif
