/* options.c: a fleet budget's default options, the same with or without hiredis (a
 * program fills them either way; create then says what is missing). */
#include <string.h>

#include "tidepool/fleet.h"

void tp_fleet_options_init(tp_fleet_options *o)
{
    memset(o, 0, sizeof *o);
    o->version = TP_FLEET_OPTIONS_VERSION;
    o->heartbeat = 2 * TP_NSEC_PER_SEC;
    o->heartbeat_jitter = 0.2;
    o->lease = 10 * TP_NSEC_PER_SEC;
    o->redis_timeout = TP_NSEC_PER_SEC;
    o->unreachable = TP_FLEET_DEGRADED;
}
