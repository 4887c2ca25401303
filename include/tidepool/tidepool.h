/* tidepool.h: the umbrella header. Including it gives the whole public API:
 * errors and version, the time base, the connector interface, the keyed pool, the
 * HTTP/1.1 client, the PostgreSQL and Redis connectors, and pool sizing. (None of the
 * headers needs libpq's or hiredis's own: their types are declared opaquely.) */
#ifndef TIDEPOOL_H
#define TIDEPOOL_H

#include "errors.h"
#include "alloc.h"
#include "runtime.h"
#include "version.h"
#include "clock.h"
#include "connector.h"
#include "pool.h"
#include "http.h"
#include "pg.h"
#include "redis.h"
#include "sizing.h"
#include "metrics.h"
#include "diag.h"
#include "ktrace.h"
#include "chaos.h"
#include "fleet.h"

#endif
