/* tidepool.h: the umbrella header. Including it gives the whole public API:
 * errors and version, the time base, the connector interface, the keyed pool and the
 * HTTP/1.1 client. */
#ifndef TIDEPOOL_H
#define TIDEPOOL_H

#include "errors.h"
#include "version.h"
#include "clock.h"
#include "connector.h"
#include "pool.h"
#include "http.h"

#endif
