/* tools/plot.c: see plot.h. Recording is two growable arrays; the writer computes the
 * scales, then draws panels, grid, lines, markers and legend as plain SVG elements (no
 * script, no CSS beyond presentation attributes, so every renderer shows the same). */
#include "plot.h"
#include "svg.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Geometry, in SVG user units. */
#define W 1000
#define H 620
#define X0 70.0   /* left edge of the panels */
#define X1 820.0  /* right edge; the legend sits beyond */
#define TOP0 84.0 /* connections panel */
#define TOP1 310.0
#define BOT0 350.0 /* latency panel */
#define BOT1 560.0

enum { S_LIMIT, S_INUSE, S_P50, S_P99, S_COUNT };

static const struct {
    const char *name, *label, *colour;
    double width;
    bool step;
} series[S_COUNT] = {
    {"limit", "adaptive limit", "#d62728", 2.5, true},
    {"in_use", "leases in use", "#1f77b4", 1.5, false},
    {"p50", "latency p50", "#2ca02c", 1.5, false},
    {"p99", "latency p99", "#ff7f0e", 1.5, false},
};

int plot_init(plot *p, int64_t t0_ns, int64_t interval_ns)
{
    memset(p, 0, sizeof *p);
    if (interval_ns <= 0)
        return -1;
    p->t0_ns = t0_ns;
    p->interval_ns = interval_ns;
    return 0;
}

void plot_free(plot *p)
{
    for (size_t i = 0; i < p->nmarks; i++)
        free(p->marks[i].label);
    free(p->pts);
    free(p->marks);
    p->pts = NULL;
    p->marks = NULL;
    p->n = p->cap = p->nmarks = p->mcap = 0;
}

/* Makes room for one more element in *arr (of *cap, *n used). Returns 0 or -1. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap != 0 ? *cap * 2 : 64;
    void *a = realloc(*arr, nc * size);
    if (a == NULL)
        return -1;
    *arr = a;
    *cap = nc;
    return 0;
}

int plot_add(plot *p, int64_t t_ns, double limit, double in_use, int64_t p50_us, int64_t p99_us)
{
    if (grow((void **)&p->pts, &p->cap, p->n, sizeof *p->pts) != 0)
        return -1;
    p->pts[p->n++] = (plot_point){t_ns, limit, in_use, p50_us < 0 ? -1.0 : (double)p50_us / 1e3,
                                  p99_us < 0 ? -1.0 : (double)p99_us / 1e3};
    return 0;
}

int plot_mark(plot *p, int64_t t_ns, const char *label)
{
    char *copy = strdup(label != NULL ? label : "");
    if (copy == NULL || grow((void **)&p->marks, &p->mcap, p->nmarks, sizeof *p->marks) != 0) {
        free(copy);
        return -1;
    }
    p->marks[p->nmarks++] = (plot_marker){t_ns, copy};
    return 0;
}

/* ---- writing ---------------------------------------------------------------------------- */

static double value(const plot_point *pt, int s)
{
    return s == S_LIMIT   ? pt->limit
           : s == S_INUSE ? pt->in_use
           : s == S_P50   ? pt->p50_ms
                          : pt->p99_ms;
}

/* A step of 1, 2 or 5 times a power of ten giving about n ticks over [0, range]. */
static double nice_step(double range, int n)
{
    double raw = range / n, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

typedef struct scale {
    double tmax_s; /* x axis: 0 .. tmax_s seconds */
    double ymax;   /* y axis of the panel being drawn: 0 .. ymax */
    double y0, y1; /* the panel's top and bottom */
} scale;

static double xs(const scale *sc, double t_s)
{
    return X0 + t_s / sc->tmax_s * (X1 - X0);
}
static double ys(const scale *sc, double v)
{
    return sc->y1 - v / sc->ymax * (sc->y1 - sc->y0);
}

/* A panel: frame, horizontal grid with labels, vertical grid, y axis title. Sets
 * sc->ymax to a round value at or above vmax. */
static void panel(FILE *f, scale *sc, double vmax, const char *ytitle)
{
    double step = nice_step(vmax > 0 ? vmax * 1.1 : 1, 5);
    sc->ymax = ceil((vmax > 0 ? vmax * 1.1 : 1) / step) * step;
    fprintf(f,
            "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#fafafa\" "
            "stroke=\"#888\"/>\n",
            X0, sc->y0, X1 - X0, sc->y1 - sc->y0);
    for (double v = 0; v <= sc->ymax + step / 2; v += step) {
        double y = ys(sc, v);
        fprintf(f, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", X0,
                y, X1, y);
        fprintf(f, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", X0 - 6, y + 4, v);
    }
    double xstep = nice_step(sc->tmax_s, 10);
    for (double t = xstep; t < sc->tmax_s; t += xstep)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#eeeeee\"/>\n",
                xs(sc, t), sc->y0, xs(sc, t), sc->y1);
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">",
            (sc->y0 + sc->y1) / 2);
    svg_put_escaped(f, ytitle);
    fputs("</text>\n", f);
}

/* Series s as polylines; a missing value or an interval of silence starts a new one. */
static void lines(FILE *f, const plot *p, const scale *sc, int s)
{
    bool open = false;
    double prev_v = 0;
    for (size_t i = 0; i < p->n; i++) {
        const plot_point *pt = &p->pts[i];
        double v = value(pt, s), x = xs(sc, (double)(pt->t_ns - p->t0_ns) / 1e9);
        bool gap = i > 0 && pt->t_ns - p->pts[i - 1].t_ns > 2 * p->interval_ns;
        if (open && (v < 0 || gap)) {
            fputs("\"/>\n", f);
            open = false;
        }
        if (v < 0)
            continue;
        if (!open) {
            fprintf(f,
                    "<polyline class=\"series-%s\" fill=\"none\" stroke=\"%s\" "
                    "stroke-width=\"%g\" stroke-linejoin=\"round\" points=\"",
                    series[s].name, series[s].colour, series[s].width);
            open = true;
        } else if (series[s].step) {
            fprintf(f, " %.1f,%.1f", x, ys(sc, prev_v));
        }
        fprintf(f, " %.1f,%.1f", x, ys(sc, v));
        prev_v = v;
    }
    if (open)
        fputs("\"/>\n", f);
}

int plot_write_file(const plot *p, FILE *f, const char *title)
{
    scale sc = {.tmax_s = (double)p->interval_ns / 1e9};
    double conn_max = 0, lat_max = 0;
    for (size_t i = 0; i < p->n; i++) {
        const plot_point *pt = &p->pts[i];
        sc.tmax_s = fmax(sc.tmax_s, (double)(pt->t_ns - p->t0_ns) / 1e9);
        conn_max = fmax(conn_max, fmax(pt->limit, pt->in_use));
        lat_max = fmax(lat_max, fmax(pt->p50_ms, pt->p99_ms));
    }
    for (size_t i = 0; i < p->nmarks; i++)
        sc.tmax_s = fmax(sc.tmax_s, (double)(p->marks[i].t_ns - p->t0_ns) / 1e9);

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
            "font-weight=\"bold\">",
            W, H, W, H, W / 2);
    svg_put_escaped(f,
                    title != NULL ? title : "tidepool bench: limit, in use and latency over time");
    fputs("</text>\n", f);

    sc.y0 = TOP0;
    sc.y1 = TOP1;
    panel(f, &sc, conn_max, "connections");
    lines(f, p, &sc, S_LIMIT);
    lines(f, p, &sc, S_INUSE);
    sc.y0 = BOT0;
    sc.y1 = BOT1;
    panel(f, &sc, lat_max, "latency (ms)");
    lines(f, p, &sc, S_P50);
    lines(f, p, &sc, S_P99);

    double xstep = nice_step(sc.tmax_s, 10);
    for (double t = 0; t <= sc.tmax_s + xstep / 1e6; t += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%gs</text>\n", xs(&sc, t),
                BOT1 + 16, t);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">time since start (s)</text>\n",
            (X0 + X1) / 2, BOT1 + 40);

    /* Markers across both panels; labels alternate between two rows so that close ones
     * do not overprint. */
    for (size_t i = 0; i < p->nmarks; i++) {
        double x = xs(&sc, (double)(p->marks[i].t_ns - p->t0_ns) / 1e9);
        fprintf(f,
                "<g class=\"mark\"><line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" "
                "stroke=\"#555\" stroke-dasharray=\"5 4\"/>\n"
                "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\" fill=\"#333\">",
                x, TOP0 - (i % 2 ? 20 : 6), x, BOT1, x, TOP0 - (i % 2 ? 24 : 10));
        svg_put_escaped(f, p->marks[i].label);
        fputs("</text></g>\n", f);
    }

    for (int s = 0; s <= S_COUNT; s++) {
        double y = TOP0 + 10 + 22 * s;
        if (s < S_COUNT)
            fprintf(f,
                    "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" "
                    "stroke-width=\"%g\"/>\n<text x=\"%g\" y=\"%g\">%s</text>\n",
                    X1 + 14, y, X1 + 40, y, series[s].colour, series[s].width, X1 + 46, y + 4,
                    series[s].label);
        else
            fprintf(f,
                    "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#555\" "
                    "stroke-dasharray=\"5 4\"/>\n<text x=\"%g\" y=\"%g\">server phase</text>\n",
                    X1 + 14, y, X1 + 40, y, X1 + 46, y + 4);
    }
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}

int plot_write(const plot *p, const char *path, const char *title)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int rc = plot_write_file(p, f, title);
    int e = rc != 0 ? errno : 0;
    if (fclose(f) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0)
        errno = e != 0 ? e : EIO;
    return rc;
}
