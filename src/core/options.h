/* core/options.h: what options.c defines for the other files of the pool: validating *
 * a pool's options. */
#ifndef TP_CORE_OPTIONS_H
#define TP_CORE_OPTIONS_H

#include "tidepool/pool.h"

/* tp__options_validate: TP_OK, or TP_EINVAL with a message naming the field. */
tp_err tp__options_validate(const tp_pool_options *o, tp_errinfo *err);

#endif
