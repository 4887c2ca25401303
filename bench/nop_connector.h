/* bench/nop_connector.h: the connector the pool benchmarks measure the pool with: every
 * "connection" is one static address, and nothing is opened, checked or closed, so what
 * a benchmark times is the pool alone. */
#ifndef TP_BENCH_NOP_CONNECTOR_H
#define TP_BENCH_NOP_CONNECTOR_H

#include "tidepool/tidepool.h"

static int nop_conn;

static tp_err nop_open(void *ctx, const void *key, size_t keylen, int64_t deadline, void **conn,
                       tp_errinfo *err)
{
    (void)ctx, (void)key, (void)keylen, (void)deadline, (void)err;
    *conn = &nop_conn;
    return TP_OK;
}

static void nop_close(void *ctx, void *conn, tp_close_reason reason)
{
    (void)ctx, (void)conn, (void)reason;
}

/* nop_connector: the connector above, for tp_pool_options.connector. */
static inline tp_connector nop_connector(void)
{
    return (tp_connector){.open = nop_open, .close = nop_close};
}

#endif
