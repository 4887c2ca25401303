/* heatmap.c: recording and merging of the latency heat map (see heatmap.h); the SVG is
 * drawn by heatmap_svg.c. Rows are four per power of two, found with integer arithmetic
 * only (no log() per sample): row = 4 * msb + the two bits after the leading one. */
#include <stdlib.h>
#include <string.h>

#include "heatmap.h"

int heatmap_init(heatmap *h, int64_t t0_ns, int64_t bucket_ns)
{
    memset(h, 0, sizeof *h);
    if (bucket_ns <= 0)
        return -1;
    h->t0_ns = t0_ns;
    h->bucket_ns = bucket_ns;
    return 0;
}

void heatmap_free(heatmap *h)
{
    free(h->cols);
    h->cols = NULL;
    h->ncols = h->cap = 0;
}

int heatmap_row_of(int64_t latency_us)
{
    uint64_t v = latency_us < 1 ? 1 : (uint64_t)latency_us;
    if (v >> HEATMAP_OCTAVES)
        return HEATMAP_ROWS - 1;
    int msb = 63 - __builtin_clzll(v);
    int sub = (int)(((v << 2) >> msb) & 3);
    return msb * HEATMAP_PER_OCTAVE + sub;
}

double heatmap_row_lo_us(int row)
{
    int octave = row / HEATMAP_PER_OCTAVE, sub = row % HEATMAP_PER_OCTAVE;
    return (double)((uint64_t)1 << octave) * (double)(HEATMAP_PER_OCTAVE + sub) /
           HEATMAP_PER_OCTAVE;
}

/* fold: halves the time resolution: column i becomes columns 2i and 2i+1. */
static void fold(heatmap *h)
{
    size_t n = (h->ncols + 1) / 2;
    for (size_t i = 0; i < n; i++) {
        heatmap_col c = h->cols[2 * i];
        if (2 * i + 1 < h->ncols) {
            const heatmap_col *o = &h->cols[2 * i + 1];
            for (int r = 0; r < HEATMAP_ROWS; r++)
                c.n[r] += o->n[r];
            c.opens += o->opens;
        }
        h->cols[i] = c;
    }
    if (h->ncols > n)
        memset(h->cols + n, 0, (h->ncols - n) * sizeof *h->cols);
    h->ncols = n;
    h->bucket_ns *= 2;
}

static size_t index_of(const heatmap *h, int64_t t_ns)
{
    return t_ns <= h->t0_ns ? 0 : (size_t)((t_ns - h->t0_ns) / h->bucket_ns);
}

/* column: the column of time t_ns, folding and growing as needed; NULL when memory ran
 * out. Columns are zeroed when they come into use. */
static heatmap_col *column(heatmap *h, int64_t t_ns)
{
    size_t i = index_of(h, t_ns);
    while (i >= HEATMAP_MAX_COLS) {
        fold(h);
        i = index_of(h, t_ns);
    }
    if (i >= h->cap) {
        size_t cap = h->cap ? h->cap : 64;
        while (cap <= i)
            cap *= 2;
        if (cap > HEATMAP_MAX_COLS)
            cap = HEATMAP_MAX_COLS;
        heatmap_col *c = realloc(h->cols, cap * sizeof *c);
        if (c == NULL)
            return NULL;
        memset(c + h->cap, 0, (cap - h->cap) * sizeof *c);
        h->cols = c;
        h->cap = cap;
    }
    if (i >= h->ncols)
        h->ncols = i + 1;
    return &h->cols[i];
}

int heatmap_add_sample(heatmap *h, int64_t t_ns, int64_t latency_us, bool opened)
{
    heatmap_col *c = column(h, t_ns);
    if (c == NULL) {
        h->dropped++;
        return -1;
    }
    c->n[heatmap_row_of(latency_us)]++;
    h->samples++;
    if (opened) {
        c->opens++;
        h->opens++;
    }
    return 0;
}

int heatmap_add_opens(heatmap *h, int64_t t_ns, uint32_t n)
{
    heatmap_col *c = column(h, t_ns);
    if (c == NULL)
        return -1;
    c->opens += n;
    h->opens += n;
    return 0;
}

int heatmap_merge(heatmap *dst, const heatmap *src)
{
    if (dst->t0_ns != src->t0_ns || dst->bucket_ns <= 0 || src->bucket_ns <= 0)
        return -1;
    int64_t hi = dst->bucket_ns > src->bucket_ns ? dst->bucket_ns : src->bucket_ns;
    int64_t lo = dst->bucket_ns > src->bucket_ns ? src->bucket_ns : dst->bucket_ns;
    int64_t ratio = hi / lo;
    if (hi % lo != 0 || (ratio & (ratio - 1)) != 0)
        return -1;
    while (dst->bucket_ns < src->bucket_ns)
        fold(dst);
    for (size_t i = 0; i < src->ncols; i++) {
        /* The start of source column i lies in exactly one (coarser or equal) dst column. */
        heatmap_col *c = column(dst, src->t0_ns + (int64_t)i * src->bucket_ns);
        if (c == NULL)
            return -1;
        const heatmap_col *s = &src->cols[i];
        for (int r = 0; r < HEATMAP_ROWS; r++)
            c->n[r] += s->n[r];
        c->opens += s->opens;
    }
    dst->samples += src->samples;
    dst->opens += src->opens;
    dst->dropped += src->dropped;
    return 0;
}
