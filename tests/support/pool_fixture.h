/* tests/support/pool_fixture.h: the fixture most pool tests share: a fake connector and
 * the pool under test, created per test case (cmocka setup/teardown). Tests whose fixture
 * holds more (a trace recorder, adaptive options, callback state) keep their own. */
#ifndef TP_TEST_POOL_FIXTURE_H
#define TP_TEST_POOL_FIXTURE_H

#include <tidepool/tidepool.h>

#include "fake_connector.h"

typedef struct pool_fx {
    fake_connector f;
    tp_pool *p; /* the test creates it; teardown destroys it (NULL is fine) */
} pool_fx;

/* pool_fx_setup: a zeroed pool_fx with an initialised fake in *state. */
int pool_fx_setup(void **state);
/* pool_fx_teardown: releases a gate a failed test may have left closed and stops injected
 * open failures (so destroy never waits on them), destroys the pool, then the fake. */
int pool_fx_teardown(void **state);
/* pool_fx_options: the fake's pool options, without the maintenance thread (the tests
 * drive tp_pool_maintain themselves, so timing is theirs). */
void pool_fx_options(pool_fx *x, tp_pool_options *o);
/* pool_fx_pool: creates x->p with pool_fx_options and returns it. */
tp_pool *pool_fx_pool(pool_fx *x);

#endif
