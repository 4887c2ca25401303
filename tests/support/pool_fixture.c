/* tests/support/pool_fixture.c: see pool_fixture.h. */
#include <stdlib.h>

#include "pool_fixture.h"
#include "test_util.h"

int pool_fx_setup(void **state)
{
    pool_fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    fake_init(&x->f);
    *state = x;
    return 0;
}

int pool_fx_teardown(void **state)
{
    pool_fx *x = *state;
    fake_gate_open(&x->f);
    fake_fail_all(&x->f, TP_OK);
    tp_pool_destroy(x->p);
    fake_destroy(&x->f);
    free(x);
    return 0;
}

void pool_fx_options(pool_fx *x, tp_pool_options *o)
{
    fake_pool_options(&x->f, o);
    o->maintenance_thread = false;
}

tp_pool *pool_fx_pool(pool_fx *x)
{
    tp_pool_options o;
    pool_fx_options(x, &o);
    x->p = tu_pool_create(&o);
    return x->p;
}
