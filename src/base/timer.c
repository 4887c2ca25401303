/* timer.c: the timer heap of timer.h. */
#include "base.h"
#include "timer.h"

void tp__timer_init(tp__timer *t)
{
    t->due = TP_DURATION_INFINITE;
    t->idx = SIZE_MAX;
}

void tp__timers_init(tp__timers *ts)
{
    ts->h = NULL;
    ts->n = ts->cap = 0;
}

void tp__timers_free(tp__timers *ts)
{
    tp__free(ts->h);
    tp__timers_init(ts);
}

static void swap(tp__timers *ts, size_t i, size_t j)
{
    tp__timer *t = ts->h[i];
    ts->h[i] = ts->h[j];
    ts->h[j] = t;
    ts->h[i]->idx = i;
    ts->h[j]->idx = j;
}

static void up(tp__timers *ts, size_t i)
{
    while (i > 0 && ts->h[(i - 1) / 2]->due > ts->h[i]->due) {
        swap(ts, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void down(tp__timers *ts, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < ts->n && ts->h[l]->due < ts->h[m]->due)
            m = l;
        if (r < ts->n && ts->h[r]->due < ts->h[m]->due)
            m = r;
        if (m == i)
            return;
        swap(ts, i, m);
        i = m;
    }
}

tp_err tp__timers_reserve(tp__timers *ts, size_t n)
{
    if (n <= ts->cap)
        return TP_OK;
    size_t cap = ts->cap ? ts->cap : 64;
    while (cap < n)
        cap *= 2;
    tp__timer **h = tp__realloc(ts->h, cap * sizeof *h);
    if (h == NULL)
        return TP_ENOMEM;
    ts->h = h;
    ts->cap = cap;
    return TP_OK;
}

tp_err tp__timers_set(tp__timers *ts, tp__timer *t, int64_t due)
{
    t->due = due;
    if (tp__timer_armed(t)) {
        down(ts, t->idx);
        up(ts, t->idx);
        return TP_OK;
    }
    if (ts->n == ts->cap && tp__timers_reserve(ts, ts->n + 1) != TP_OK)
        return TP_ENOMEM;
    t->idx = ts->n;
    ts->h[ts->n++] = t;
    up(ts, t->idx);
    return TP_OK;
}

void tp__timers_cancel(tp__timers *ts, tp__timer *t)
{
    size_t i = t->idx;
    if (i == SIZE_MAX)
        return;
    ts->n--;
    if (i != ts->n) {
        ts->h[i] = ts->h[ts->n];
        ts->h[i]->idx = i;
        down(ts, i);
        up(ts, i);
    }
    t->idx = SIZE_MAX;
}
