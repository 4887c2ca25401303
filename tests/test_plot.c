/* test_plot.c: the bench's time-series chart (tools/plot.c): a synthetic 20 s run at
 * 100 ms whose limit follows a capacity that halves and recovers, with phase marks, a
 * gap without latency and a hostile title; the SVG must be well-formed (every tag
 * closed in order), carry a polyline per series and the marks' labels, escape the title,
 * and render with rsvg-convert to a PNG.
 *
 * Without rsvg-convert (Debian: librsvg2-bin) the render check cannot run: the other
 * checks still do, and the test then exits 77 (skipped). Set TP_PLOT_KEEP=1 to keep the
 * files and look at them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../tools/plot.h"

static bool have_rsvg;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* Every element closed in order, nothing after the root, no raw '<' or '&' in text. */
static void assert_well_formed(const char *s)
{
    char stack[32][32];
    int depth = 0, roots = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '&') {
            assert_true(strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
                        strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&quot;", 6) == 0);
            continue;
        }
        if (*p != '<')
            continue;
        const char *e = strchr(p, '>');
        assert_non_null(e);
        if (p[1] == '?' || p[1] == '!') {
            p = e;
            continue;
        }
        assert_null(memchr(p + 1, '<', (size_t)(e - p - 1)));
        bool closing = p[1] == '/', empty = e[-1] == '/';
        const char *name = p + (closing ? 2 : 1);
        size_t nl = strcspn(name, " />");
        assert_true(nl > 0 && nl < 32);
        if (closing) {
            assert_true(depth > 0);
            depth--;
            assert_int_equal(strlen(stack[depth]), nl);
            assert_memory_equal(stack[depth], name, nl);
        } else if (!empty) {
            assert_true(depth < 32);
            if (depth == 0)
                roots++;
            memcpy(stack[depth], name, nl);
            stack[depth++][nl] = '\0';
        }
        p = e;
    }
    assert_int_equal(depth, 0);
    assert_int_equal(roots, 1);
}

static void test_chart(void **state)
{
    (void)state;
    char dir[] = "/tmp/tp-plot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char svg[64], png[64];
    snprintf(svg, sizeof svg, "%s/plot.svg", dir);
    snprintf(png, sizeof png, "%s/plot.png", dir);

    plot p;
    assert_int_equal(plot_init(&p, 0, 0), -1);
    const int64_t t0 = 5000000000, ms = 1000000;
    assert_int_equal(plot_init(&p, t0, 100 * ms), 0);
    /* Capacity 8 workers at 2 ms, 4 from 5 s, 8 at 8 ms from 10 s, back at 15 s. */
    for (int i = 1; i <= 200; i++) {
        double t = i / 10.0, cap = t < 5 || t >= 10 ? 8 : 4, svc = t >= 10 && t < 15 ? 8 : 2;
        double limit = cap + 2 + (i % 7) * 0.3, in_use = cap - (i % 3) * 0.5;
        int64_t p50 = (int64_t)(svc * 1000 * (limit > cap ? 1 + (limit - cap) / cap : 1));
        bool quiet = i >= 120 && i < 124; /* no request completed: a gap in latency */
        assert_int_equal(
            plot_add(&p, t0 + i * 100 * ms, limit, in_use, quiet ? -1 : p50, quiet ? -1 : p50 * 3),
            0);
    }
    assert_int_equal(plot_mark(&p, t0 + 5000 * ms, "k=4, 2 ms"), 0);
    assert_int_equal(plot_mark(&p, t0 + 10000 * ms, "k=8, 8 ms"), 0);
    assert_int_equal(plot_mark(&p, t0 + 15000 * ms, "k=8, 2 ms"), 0);
    assert_int_equal(plot_write(&p, svg, "bench <demo> & \"phases\""), 0);
    assert_int_equal(plot_write(&p, "/nonexistent/dir/x.svg", NULL), -1);
    assert_int_equal(errno, ENOENT);
    plot_free(&p);

    char *s = slurp(svg);
    assert_well_formed(s);
    assert_int_equal(count(s, "<svg"), 1);
    assert_int_equal(count(s, "</svg>"), 1);
    static const char *const names[] = {"limit", "in_use", "p50", "p99"};
    for (size_t i = 0; i < 4; i++) {
        char cls[40];
        snprintf(cls, sizeof cls, "<polyline class=\"series-%s\"", names[i]);
        assert_true(count(s, cls) >= 1);
    }
    assert_int_equal(count(s, "<polyline class=\"series-p99\""), 2); /* the quiet gap */
    assert_int_equal(count(s, "class=\"mark\""), 3);
    assert_non_null(strstr(s, ">k=4, 2 ms<"));
    assert_non_null(strstr(s, ">k=8, 8 ms<"));
    assert_non_null(strstr(s, ">k=8, 2 ms<"));
    assert_non_null(strstr(s, "bench &lt;demo&gt; &amp; &quot;phases&quot;"));
    assert_non_null(strstr(s, "latency (ms)"));
    free(s);

    /* An empty plot still gives a valid document. */
    char empty[64];
    snprintf(empty, sizeof empty, "%s/empty.svg", dir);
    assert_int_equal(plot_init(&p, t0, 1000 * ms), 0);
    assert_int_equal(plot_write(&p, empty, NULL), 0);
    plot_free(&p);
    s = slurp(empty);
    assert_well_formed(s);
    assert_null(strstr(s, "<polyline"));
    free(s);

    if (have_rsvg) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rsvg-convert -o '%s' '%s'", png, svg);
        assert_int_equal(system(cmd), 0);
        FILE *f = fopen(png, "rb");
        assert_non_null(f);
        unsigned char sig[8];
        assert_int_equal(fread(sig, 1, 8, f), 8);
        fclose(f);
        assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    }
    if (getenv("TP_PLOT_KEEP") != NULL) {
        printf("kept %s, %s, %s\n", svg, png, empty);
    } else {
        unlink(svg);
        unlink(png);
        unlink(empty);
        rmdir(dir);
    }
}

int main(void)
{
    have_rsvg = system("command -v rsvg-convert >/dev/null 2>&1") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chart),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0 && !have_rsvg) {
        printf("rsvg-convert not found (Debian: librsvg2-bin): render check skipped\n");
        return 77;
    }
    return rc;
}
