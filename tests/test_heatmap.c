/* test_heatmap.c: the bench's latency heat map (tools/heatmap.h): rows cover every
 * latency exactly once, long runs fold into bounded memory without losing samples,
 * per-thread instances merge, and the SVG drawn from synthetic data with a stall and a
 * burst of connection opens is well-formed, holds one cell per (time, latency) pair with
 * requests and one marker per column with opens, and renders with rsvg-convert.
 *
 * Without rsvg-convert (Debian: librsvg2-bin) the render check cannot run: the other
 * checks still do, and the test then exits 77 (skipped). Set TP_HEATMAP_KEEP=1 to keep
 * the SVG and PNG (their paths are printed) for a look. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../tools/heatmap.h"

#define SEC INT64_C(1000000000)
#define MSEC INT64_C(1000000)

static bool have_rsvg;

static void test_rows(void **state)
{
    assert_int_equal(heatmap_row_of(0), 0);
    assert_int_equal(heatmap_row_of(-5), 0);
    assert_int_equal(heatmap_row_of(1), 0);
    assert_int_equal(heatmap_row_of(INT64_MAX), HEATMAP_ROWS - 1);
    int prev = 0;
    for (int64_t v = 1; v < (INT64_C(1) << 32); v += v / 7 + 1) {
        int r = heatmap_row_of(v);
        assert_true(r >= prev);
        assert_true(heatmap_row_lo_us(r) <= (double)v);
        assert_true((double)v < heatmap_row_lo_us(r + 1));
        prev = r;
    }
    /* Four rows per power of two: each about 19 % (at most 25 %) wide. */
    for (int r = 4; r < HEATMAP_ROWS; r++) {
        double ratio = heatmap_row_lo_us(r + 1) / heatmap_row_lo_us(r);
        assert_true(ratio > 1.1 && ratio <= 1.25 + 1e-12);
    }
}

static uint64_t total_count(const heatmap *h, uint64_t *opens)
{
    uint64_t n = 0;
    *opens = 0;
    for (size_t i = 0; i < h->ncols; i++) {
        for (int r = 0; r < HEATMAP_ROWS; r++)
            n += h->cols[i].n[r];
        *opens += h->cols[i].opens;
    }
    return n;
}

static void test_fold_and_merge(void **state)
{
    heatmap a, b;
    assert_int_equal(heatmap_init(&a, 0, 10 * MSEC), 0);
    assert_int_equal(heatmap_init(&b, 0, 10 * MSEC), 0);
    assert_int_equal(heatmap_init(&b, 0, 0), -1);
    assert_int_equal(heatmap_init(&b, 0, 10 * MSEC), 0);
    /* 20 s of 10 ms columns is 2000 columns: folded twice, to 40 ms. */
    for (int64_t t = 0; t < 20 * SEC; t += 5 * MSEC)
        assert_int_equal(heatmap_add_sample(&a, t, 250, t % SEC == 0), 0);
    assert_true(a.ncols <= HEATMAP_MAX_COLS);
    assert_int_equal(a.bucket_ns, 40 * MSEC);
    uint64_t opens;
    assert_int_equal(total_count(&a, &opens), 4000);
    assert_int_equal(opens, 20);
    assert_int_equal(a.samples, 4000);
    assert_int_equal(a.cols[0].n[heatmap_row_of(250)], 8); /* 40 ms / 5 ms */

    /* A finer instance merges into a coarser one, and the other way round. */
    for (int64_t t = 0; t < 2 * SEC; t += 100 * MSEC)
        assert_int_equal(heatmap_add_sample(&b, t, 5000, true), 0);
    assert_int_equal(heatmap_add_opens(&b, 3 * SEC, 7), 0);
    assert_int_equal(b.bucket_ns, 10 * MSEC);
    assert_int_equal(heatmap_merge(&b, &a), 0); /* b folds to 40 ms first */
    assert_int_equal(b.bucket_ns, 40 * MSEC);
    assert_int_equal(total_count(&b, &opens), 4020);
    assert_int_equal(opens, 20 + 20 + 7);
    assert_int_equal(b.samples, 4020);
    assert_int_equal(b.cols[75].opens, 7 + 1); /* 3 s / 40 ms: b's 7 and a's one at 3 s */
    heatmap c;
    assert_int_equal(heatmap_init(&c, 0, 10 * MSEC), 0);
    assert_int_equal(heatmap_add_sample(&c, 100 * MSEC, 5000, false), 0);
    assert_int_equal(heatmap_merge(&a, &c), 0);
    assert_int_equal(a.bucket_ns, 40 * MSEC);
    assert_int_equal(a.cols[2].n[heatmap_row_of(5000)], 1);
    /* Mismatches are refused. */
    heatmap d;
    assert_int_equal(heatmap_init(&d, 5, 10 * MSEC), 0);
    assert_int_equal(heatmap_merge(&a, &d), -1);
    assert_int_equal(heatmap_init(&d, 0, 30 * MSEC), 0);
    assert_int_equal(heatmap_merge(&a, &d), -1);
    heatmap_free(&a);
    heatmap_free(&b);
    heatmap_free(&c);
    heatmap_free(&d);
}

/* Counts the occurrences of needle in s. */
static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A small well-formedness check: every element is closed in order, the root is <svg>,
 * nothing but whitespace follows it, and attribute values are quoted. */
static void assert_well_formed(const char *s)
{
    const char *stack[64];
    size_t len[64];
    int depth = 0, roots = 0;
    const char *p = s;
    assert_true(strncmp(p, "<?xml", 5) == 0);
    p = strstr(p, "?>") + 2;
    while ((p = strchr(p, '<')) != NULL) {
        const char *end = strchr(p, '>');
        assert_non_null(end);
        assert_null(memchr(p + 1, '<', (size_t)(end - p - 1))); /* no stray '<' inside */
        int quotes = 0;
        for (const char *q = p; q < end; q++)
            quotes += *q == '"';
        assert_int_equal(quotes % 2, 0);
        if (p[1] == '/') {
            assert_true(depth > 0);
            depth--;
            assert_int_equal(strncmp(p + 2, stack[depth], len[depth]), 0);
            assert_true(p[2 + len[depth]] == '>');
        } else if (end[-1] != '/') {
            size_t n = strcspn(p + 1, " \t\n/>");
            if (depth == 0) {
                roots++;
                assert_int_equal(strncmp(p + 1, "svg", n), 0);
            }
            assert_true(depth < 64);
            stack[depth] = p + 1;
            len[depth++] = n;
        }
        p = end + 1;
    }
    assert_int_equal(depth, 0);
    assert_int_equal(roots, 1);
    const char *close = strstr(s, "</svg>");
    assert_non_null(close);
    for (p = close + 6; *p; p++)
        assert_true(*p == '\n' || *p == ' ');
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    buf[sz] = '\0';
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

/* Renders svg to png with rsvg-convert; asserts exit 0 and a PNG. */
static void render(const char *svg, const char *png)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rsvg-convert -o '%s' '%s'", png, svg);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    size_t n;
    char *buf = slurp(png, &n);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_true(n > 1000);
    assert_memory_equal(buf, sig, 8);
    free(buf);
}

/* Synthetic run of 30 s in 1 s columns, from two workers: each second 200 requests near
 * 300 us and 20 near 900 us (two cells), except a stall from 12 s to 15 s where nothing
 * completes; at 15 s the 16 stalled requests finish after about 2.6 s (a third cell), on
 * 40 freshly opened connections. 8 opens warm the pool at 0 s. */
static void fill(heatmap *w, int worker)
{
    for (int s = 0; s < 30; s++) {
        if (s >= 12 && s < 15)
            continue;
        int64_t t = (int64_t)s * SEC + 1000;
        for (int k = 0; k < 100; k++)
            assert_int_equal(heatmap_add_sample(w, t + k * 5 * MSEC, 280 + k % 30, false), 0);
        for (int k = 0; k < 10; k++)
            assert_int_equal(heatmap_add_sample(w, t + k * 50 * MSEC, 900, false), 0);
        if (s == 15)
            for (int k = 0; k < 8; k++)
                assert_int_equal(heatmap_add_sample(w, t + 2 * MSEC, 2600000 + k, true), 0);
    }
    assert_int_equal(heatmap_add_opens(w, 100, 4), 0);
    assert_int_equal(heatmap_add_opens(w, 15 * SEC + 3 * MSEC, worker == 0 ? 16 : 8), 0);
}

static void test_svg(void **state)
{
    heatmap all, w2;
    assert_int_equal(heatmap_init(&all, 0, SEC), 0);
    assert_int_equal(heatmap_init(&w2, 0, SEC), 0);
    fill(&all, 0);
    fill(&w2, 1);
    assert_int_equal(heatmap_merge(&all, &w2), 0);
    heatmap_free(&w2);
    assert_int_equal(all.ncols, 30);
    assert_int_equal(all.opens, 8 + 16 + 8 + 16);
    assert_int_equal(heatmap_row_of(280), heatmap_row_of(309)); /* one cell per group */
    assert_true(heatmap_row_of(309) != heatmap_row_of(900));

    char dir[] = "/tmp/tp_heatmap_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char svg[128], png[128], empty_svg[128], empty_png[128];
    snprintf(svg, sizeof svg, "%s/bench.svg", dir);
    snprintf(png, sizeof png, "%s/bench.png", dir);
    snprintf(empty_svg, sizeof empty_svg, "%s/empty.svg", dir);
    snprintf(empty_png, sizeof empty_png, "%s/empty.png", dir);
    assert_int_equal(heatmap_write(&all, svg, "tidepool bench http://127.0.0.1:8080/?a=1&b=<2>"),
                     0);

    size_t n;
    char *s = slurp(svg, &n);
    assert_well_formed(s);
    assert_int_equal(count(s, "class=\"cell\""), 27 * 2 + 1);
    assert_int_equal(count(s, "class=\"open\""), 2);
    assert_true(count(s, "class=\"legend\"") >= 2);
    assert_non_null(strstr(s, "?a=1&amp;b=&lt;2&gt;")); /* the title is escaped */
    assert_non_null(strstr(s, "1 ms"));                 /* latency labels */
    assert_non_null(strstr(s, "1 s<"));
    assert_non_null(strstr(s, ">40<")); /* the burst's count of opens */
    assert_non_null(strstr(s, "time since start"));
    free(s);
    if (have_rsvg)
        render(svg, png);

    /* Nothing recorded: still a valid picture that says so. */
    heatmap empty;
    assert_int_equal(heatmap_init(&empty, 0, 100 * MSEC), 0);
    assert_int_equal(heatmap_write(&empty, empty_svg, NULL), 0);
    s = slurp(empty_svg, &n);
    assert_well_formed(s);
    assert_int_equal(count(s, "class=\"cell\""), 0);
    assert_non_null(strstr(s, "no requests recorded"));
    free(s);
    if (have_rsvg)
        render(empty_svg, empty_png);

    /* An unwritable path fails with errno. */
    errno = 0;
    assert_int_equal(heatmap_write(&all, "/nonexistent-dir/x.svg", NULL), -1);
    assert_true(errno != 0);
    heatmap_free(&all);

    if (getenv("TP_HEATMAP_KEEP") != NULL) {
        printf("kept %s, %s, %s, %s\n", svg, png, empty_svg, empty_png);
    } else {
        unlink(svg);
        unlink(png);
        unlink(empty_svg);
        unlink(empty_png);
        rmdir(dir);
    }
}

int main(void)
{
    have_rsvg = system("command -v rsvg-convert >/dev/null 2>&1") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_fold_and_merge),
        cmocka_unit_test(test_svg),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0 && !have_rsvg) {
        printf("rsvg-convert not found (Debian: librsvg2-bin): render check skipped\n");
        return 77;
    }
    return rc;
}
