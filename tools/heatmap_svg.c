/* heatmap_svg.c: draws a heatmap (heatmap.h) as a standalone SVG document: a grid of
 * cells (time x latency, log scale), coloured by request count on a log scale so that
 * a rare slow request stays visible next to thousands of fast ones; connection opens as
 * bars above the grid, aligned with its columns, so churn lines up with the latency it
 * caused; axes, a legend and a title. Plain SVG 1.1 (no CSS, no scripts, no fonts beyond
 * sans-serif) so that browsers and rsvg-convert render it alike. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "heatmap.h"
#include "svg.h"

/* The page and the plot inside it, in pixels. */
#define PAGE_W 1100
#define PAGE_H 600
#define PX0 80.0
#define PX1 940.0
#define PY0 130.0
#define PY1 530.0
#define LANE_Y0 72.0 /* connection opens: bars grow up from LANE_Y1 */
#define LANE_Y1 122.0
#define LEG_X 968.0
#define EMPTY_FILL "#ececec" /* a cell where no request completed */

/* The view of one heat map being drawn. */
typedef struct view {
    const heatmap *h;
    FILE *f;
    size_t ncols;
    int rmin, rmax;      /* rows holding data */
    double lylo, lyhi;   /* log10 of the latency axis' ends (us), whole decades */
    uint32_t max_n;      /* largest cell */
    uint32_t max_opens;  /* largest column of opens */
    double colw, span_s; /* column width in px, time covered in s */
} view;

/* Colour of a share t in [0, 1] of the count scale: a sequential ramp from pale yellow
 * through orange and red to dark purple, so darker always means more. */
static void ramp(double t, char out[8])
{
    static const unsigned char stop[5][3] = {
        {255, 237, 160}, {253, 174, 80}, {232, 72, 40}, {160, 18, 72}, {58, 8, 72}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double x = t * 4;
    int i = x >= 4 ? 3 : (int)x;
    double u = x - i;
    int rgb[3];
    for (int k = 0; k < 3; k++)
        rgb[k] = (int)lround(stop[i][k] + u * (stop[i + 1][k] - stop[i][k]));
    snprintf(out, 8, "#%02x%02x%02x", (unsigned)rgb[0], (unsigned)rgb[1], (unsigned)rgb[2]);
}

/* Share of the colour scale for a count n >= 1: log scale, 1 at the top. */
static double share(const view *v, uint32_t n)
{
    return v->max_n > 1 ? log((double)n) / log((double)v->max_n) : 1.0;
}

static double y_of(const view *v, double us)
{
    return PY1 - (log10(us) - v->lylo) / (v->lyhi - v->lylo) * (PY1 - PY0);
}

/* A latency in microseconds as a label: "250 us", "1 ms", "2.5 s". */
static void lat_label(double us, char *buf, size_t cap)
{
    if (us < 1e3)
        snprintf(buf, cap, "%g us", us);
    else if (us < 1e6)
        snprintf(buf, cap, "%g ms", us / 1e3);
    else
        snprintf(buf, cap, "%g s", us / 1e6);
}

/* scan: the ranges the drawing needs. */
static void scan(view *v)
{
    const heatmap *h = v->h;
    v->ncols = h->ncols > 0 ? h->ncols : 1;
    v->rmin = HEATMAP_ROWS;
    v->rmax = -1;
    for (size_t i = 0; i < h->ncols; i++) {
        const heatmap_col *c = &h->cols[i];
        for (int r = 0; r < HEATMAP_ROWS; r++) {
            if (c->n[r] == 0)
                continue;
            v->rmin = r < v->rmin ? r : v->rmin;
            v->rmax = r > v->rmax ? r : v->rmax;
            v->max_n = c->n[r] > v->max_n ? c->n[r] : v->max_n;
        }
        v->max_opens = c->opens > v->max_opens ? c->opens : v->max_opens;
    }
    if (v->rmax < 0) /* no sample: show 1 ms .. 10 ms rather than nothing */
        v->rmin = v->rmax = heatmap_row_of(1000);
    v->lylo = floor(log10(heatmap_row_lo_us(v->rmin)));
    v->lyhi = ceil(log10(heatmap_row_lo_us(v->rmax + 1)));
    if (v->lyhi <= v->lylo)
        v->lyhi = v->lylo + 1;
    v->colw = (PX1 - PX0) / (double)v->ncols;
    v->span_s = (double)v->ncols * (double)h->bucket_ns / 1e9;
}

static void draw_cells(const view *v)
{
    FILE *f = v->f;
    double bs = (double)v->h->bucket_ns / 1e9;
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"%s\"/>\n", PX0,
            PY0, PX1 - PX0, PY1 - PY0, EMPTY_FILL);
    fputs("<g shape-rendering=\"crispEdges\">\n", f);
    for (size_t i = 0; i < v->h->ncols; i++) {
        const heatmap_col *c = &v->h->cols[i];
        for (int r = v->rmin; r <= v->rmax; r++) {
            if (c->n[r] == 0)
                continue;
            double lo = heatmap_row_lo_us(r), hi = heatmap_row_lo_us(r + 1);
            double y0 = y_of(v, hi), y1 = y_of(v, lo);
            char col[8], a[24], b[24];
            ramp(share(v, c->n[r]), col);
            lat_label(lo, a, sizeof a);
            lat_label(hi, b, sizeof b);
            fprintf(f,
                    "<rect class=\"cell\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                    "fill=\"%s\"><title>%.3g-%.3g s, %s-%s: %u requests</title></rect>\n",
                    PX0 + (double)i * v->colw, y0, v->colw, y1 - y0, col, (double)i * bs,
                    (double)(i + 1) * bs, a, b, (unsigned)c->n[r]);
        }
    }
    fputs("</g>\n", f);
}

/* Is column i's count of opens worth a number? All are when columns are wide; else the
 * local peaks of at least a fifth of the largest, so bursts are named, not every tick. */
static bool label_candidate(const view *v, size_t i)
{
    const heatmap_col *c = v->h->cols;
    uint32_t n = c[i].opens;
    if (n == 0)
        return false;
    if (v->colw >= 18)
        return true;
    if ((uint64_t)n * 5 < v->max_opens)
        return false;
    bool left = i == 0 || n > c[i - 1].opens;
    bool right = i + 1 >= v->h->ncols || n >= c[i + 1].opens;
    return left && right;
}

/* pick_labels: which columns get a number: candidates, largest first, each kept only if
 * no number already kept is closer than a label's width (numbers never overlap). */
static void pick_labels(const view *v, bool *keep)
{
    char digits[16];
    double gap = 7.0 * (double)snprintf(digits, sizeof digits, "%u", (unsigned)v->max_opens) + 4;
    size_t kept[HEATMAP_MAX_COLS], nkept = 0;
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < v->h->ncols; i++) {
            if (keep[i] || !label_candidate(v, i))
                continue;
            bool clear = true;
            for (size_t k = 0; k < nkept && clear; k++)
                clear = fabs((double)i - (double)kept[k]) * v->colw >= gap;
            if (clear && (best == SIZE_MAX || v->h->cols[i].opens > v->h->cols[best].opens))
                best = i;
        }
        if (best == SIZE_MAX)
            return;
        keep[best] = true;
        kept[nkept++] = best;
    }
}

static void draw_opens(const view *v)
{
    FILE *f = v->f;
    fprintf(f,
            "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" font-size=\"11\" fill=\"#333\">"
            "connection</text>\n<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" "
            "font-size=\"11\" fill=\"#333\">opens</text>\n",
            PX0 - 8, LANE_Y1 - 16, PX0 - 8, LANE_Y1 - 3);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#999\"/>\n", PX0,
            LANE_Y1 + 0.5, PX1, LANE_Y1 + 0.5);
    bool keep[HEATMAP_MAX_COLS] = {false};
    pick_labels(v, keep);
    for (size_t i = 0; i < v->h->ncols; i++) {
        uint32_t n = v->h->cols[i].opens;
        if (n == 0)
            continue;
        double bh = 4 + (LANE_Y1 - LANE_Y0 - 16) * (double)n / (double)v->max_opens;
        double w = v->colw * 0.7 < 1.5 ? 1.5 : v->colw * 0.7;
        double x = PX0 + ((double)i + 0.5) * v->colw;
        fprintf(f,
                "<rect class=\"open\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                "fill=\"#2b6cb0\"><title>%u opens</title></rect>\n",
                x - w / 2, LANE_Y1 - bh, w, bh, (unsigned)n);
        if (!keep[i])
            continue;
        fprintf(f,
                "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"10\" "
                "fill=\"#2b6cb0\">%u</text>\n",
                x, LANE_Y1 - bh - 3, (unsigned)n);
        if (v->colw < 18) /* a burst: a guide down through the grid */
            fprintf(f,
                    "<line class=\"guide\" x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\" "
                    "stroke=\"#2b6cb0\" stroke-opacity=\"0.45\" stroke-dasharray=\"3,3\"/>\n",
                    x, PY0, x, PY1);
    }
}

static void draw_axes(const view *v)
{
    FILE *f = v->f;
    char lab[24];
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"#444\"/>\n",
            PX0, PY0, PX1 - PX0, PY1 - PY0);
    /* y: every decade; with two decades or fewer, 2x and 5x as well. */
    bool fine = v->lyhi - v->lylo <= 2;
    for (double d = v->lylo; d <= v->lyhi; d++) {
        for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
            double us = (double)m * pow(10, d);
            if ((m > 1 && !fine) || log10(us) > v->lyhi + 1e-9)
                continue;
            double y = y_of(v, us);
            lat_label(us, lab, sizeof lab);
            fprintf(f,
                    "<line x1=\"%.0f\" y1=\"%.2f\" x2=\"%.0f\" y2=\"%.2f\" stroke=\"#444\"/>"
                    "<line x1=\"%.0f\" y1=\"%.2f\" x2=\"%.0f\" y2=\"%.2f\" stroke=\"#fff\" "
                    "stroke-opacity=\"0.6\"/>\n"
                    "<text x=\"%.0f\" y=\"%.2f\" text-anchor=\"end\" font-size=\"11\">%s</text>\n",
                    PX0 - 5, y, PX0, y, PX0, y, PX1, y, PX0 - 8, y + 4, lab);
        }
    }
    /* x: about eight ticks at 1, 2 or 5 times a power of ten seconds. */
    double raw = v->span_s / 8, mag = pow(10, floor(log10(raw))), step = mag;
    for (int k = 0; k < 3 && step < raw; k++)
        step = mag * (k == 0 ? 2 : k == 1 ? 5 : 10);
    for (double t = 0; t <= v->span_s * (1 + 1e-9); t += step) {
        double x = PX0 + t / v->span_s * (PX1 - PX0);
        fprintf(f,
                "<line x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\" stroke=\"#444\"/>"
                "<text x=\"%.2f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"11\">%g s</text>\n",
                x, PY1, x, PY1 + 5, x, PY1 + 18, t);
    }
    fprintf(f,
            "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"12\">time since "
            "start</text>\n",
            (PX0 + PX1) / 2, PY1 + 40);
    fprintf(f,
            "<text x=\"20\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"12\" "
            "transform=\"rotate(-90 20 %.0f)\">request latency (log scale)</text>\n",
            (PY0 + PY1) / 2, (PY0 + PY1) / 2);
}

/* The legend: count boxes from few (bottom) to many (top), and the empty-cell swatch. */
static void draw_legend(const view *v)
{
    FILE *f = v->f;
    int nbox = v->max_n < 8 ? (int)(v->max_n > 0 ? v->max_n : 1) : 8;
    fprintf(f,
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">requests</text>\n"
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">per cell</text>\n",
            LEG_X, PY0 - 18, LEG_X, PY0 - 5);
    for (int k = 0; k < nbox; k++) {
        double t = nbox > 1 ? (double)k / (nbox - 1) : 1.0;
        double n = v->max_n > 1 ? exp(t * log((double)v->max_n)) : 1.0;
        char col[8];
        ramp(t, col);
        double y = PY0 + (double)(nbox - 1 - k) * 22;
        fprintf(f,
                "<rect class=\"legend\" x=\"%.0f\" y=\"%.0f\" width=\"18\" height=\"20\" "
                "fill=\"%s\" stroke=\"#666\" stroke-width=\"0.5\"/>"
                "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%.0f</text>\n",
                LEG_X, y, col, LEG_X + 24, y + 14, floor(n + 0.5));
    }
    double y = PY0 + nbox * 22 + 14;
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"18\" height=\"20\" fill=\"%s\" "
            "stroke=\"#666\" stroke-width=\"0.5\"/>"
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">none</text>\n"
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" fill=\"#555\">(log scale)</text>\n",
            LEG_X, y, EMPTY_FILL, LEG_X + 24, y + 14, LEG_X, y + 40);
}

int heatmap_write_file(const heatmap *h, FILE *f, const char *title)
{
    view v = {.h = h, .f = f};
    scan(&v);
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
            PAGE_W, PAGE_H, PAGE_W, PAGE_H);
    fputs("<text x=\"80\" y=\"28\" font-size=\"17\" font-weight=\"bold\">", f);
    svg_put_escaped(f, title != NULL ? title : "request latency over time");
    fputs("</text>\n", f);
    double bms = (double)h->bucket_ns / 1e6;
    fprintf(f,
            "<text x=\"80\" y=\"48\" font-size=\"12\" fill=\"#444\">%llu requests, %llu "
            "connection opens; columns of %g %s, rows of a quarter octave",
            (unsigned long long)h->samples, (unsigned long long)h->opens,
            bms >= 1000 ? bms / 1000 : bms, bms >= 1000 ? "s" : "ms");
    if (h->dropped > 0)
        fprintf(f, "; %llu samples lost (out of memory)", (unsigned long long)h->dropped);
    fputs("</text>\n", f);
    draw_cells(&v);
    draw_axes(&v);
    draw_opens(&v);
    draw_legend(&v);
    if (h->samples == 0)
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"14\" "
                "fill=\"#666\">no requests recorded</text>\n",
                (PX0 + PX1) / 2, (PY0 + PY1) / 2);
    fputs("</svg>\n", f);
    if (ferror(f)) {
        if (errno == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

int heatmap_write(const heatmap *h, const char *path, const char *title)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int rc = heatmap_write_file(h, f, title);
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}
