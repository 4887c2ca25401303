/* test_textbuf.c: the growable string behind every text renderer (metrics, doctor):
 * appends of every kind land byte for byte, growth past the first 4 KiB keeps what was
 * written, JSON strings come out valid for any byte a key or a host name may carry, and
 * finish hands over the string and leaves the buffer reusable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/textbuf.h"

static void test_appends(void **state)
{
    (void)state;
    tp__tbuf b = {0};
    tp__tbuf_puts(&b, "n=");
    tp__tbuf_u64(&b, UINT64_MAX);
    tp__tbuf_putc(&b, ' ');
    tp__tbuf_i64(&b, INT64_MIN);
    tp__tbuf_put(&b, " xyz", 2);
    tp__tbuf_printf(&b, "|%s|%03d", "p", 7);
    assert_false(b.oom);
    assert_string_equal(b.p, "n=18446744073709551615 -9223372036854775808 x|p|007");
    assert_int_equal(b.len, strlen(b.p));
    tp__tbuf_free(&b);
    assert_null(b.p);
}

static void test_growth_keeps_bytes(void **state)
{
    (void)state;
    tp__tbuf b = {0};
    for (int i = 0; i < 5000; i++)
        tp__tbuf_printf(&b, "%04d,", i % 10000);
    assert_int_equal(b.len, 5000 * 5);
    assert_true(b.cap > b.len);
    for (int i = 0; i < 5000; i += 997) {
        char want[8];
        snprintf(want, sizeof want, "%04d,", i);
        assert_memory_equal(b.p + i * 5, want, 5);
    }
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(tp__tbuf_finish(&b, &s, &len), TP_OK);
    assert_int_equal(len, 25000);
    assert_int_equal(s[len], '\0');
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    free(s);
    /* The emptied buffer starts again from nothing. */
    tp__tbuf_puts(&b, "again");
    assert_string_equal(b.p, "again");
    tp__tbuf_free(&b);
}

static void test_json_escapes(void **state)
{
    (void)state;
    tp__tbuf b = {0};
    tp__tbuf_json_str(&b, "a\"b\\c\nd\re\tf\x01g\x1fh/\xc3\xa9");
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh/\xc3\xa9\"");
    tp__tbuf_free(&b);
    tp__tbuf_json_str(&b, "");
    assert_string_equal(b.p, "\"\"");
    tp__tbuf_free(&b);
}

static void test_oom_is_sticky(void **state)
{
    (void)state;
    /* A buffer already marked out of memory takes nothing more, and finish reports it
     * without handing out a partial string. */
    tp__tbuf b = {0};
    tp__tbuf_puts(&b, "kept?");
    b.oom = true;
    tp__tbuf_puts(&b, "more");
    assert_int_equal(b.len, 5);
    char *s = (char *)&b;
    assert_int_equal(tp__tbuf_finish(&b, &s, NULL), TP_ENOMEM);
    assert_ptr_equal(s, (char *)&b);
    assert_null(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_growth_keeps_bytes),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_oom_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
