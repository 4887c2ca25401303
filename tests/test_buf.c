/* test_buf.c: the one growable buffer (base/buf.h), as the text renderers (metrics,
 * doctor) and the HTTP client use it: appends of every kind land byte for byte, growth
 * keeps what was written, JSON strings come out valid for any byte a key or a host name
 * may carry, finish hands over the string and leaves the buffer reusable; byte appends
 * report TP_ENOMEM and keep what was there, reset keeps the memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"

static void test_appends(void **state)
{
    (void)state;
    tp__buf b = {0};
    tp__buf_puts(&b, "n=");
    tp__buf_u64(&b, UINT64_MAX);
    tp__buf_putc(&b, ' ');
    tp__buf_i64(&b, INT64_MIN);
    tp__buf_put(&b, " xyz", 2);
    tp__buf_printf(&b, "|%s|%03d", "p", 7);
    assert_false(b.oom);
    assert_string_equal(b.data, "n=18446744073709551615 -9223372036854775808 x|p|007");
    assert_int_equal(b.len, strlen(b.data));
    tp__buf_free(&b);
    assert_null(b.data);
}

static void test_byte_appends(void **state)
{
    (void)state;
    tp__buf b;
    tp__buf_init(&b);
    const char bin[] = {'a', '\0', 'b'};
    assert_int_equal(tp__buf_append(&b, bin, sizeof bin), TP_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, bin, 3);
    assert_int_equal(b.data[3], '\0'); /* always terminated */
    char *mem = b.data;
    size_t cap = b.cap;
    /* A size that cannot fit fails and leaves the buffer as it was. */
    assert_int_equal(tp__buf_append(&b, bin, SIZE_MAX - 1), TP_ENOMEM);
    assert_true(b.oom);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, bin, 3);
    /* Reset keeps the memory and clears the failure. */
    tp__buf_reset(&b);
    assert_false(b.oom);
    assert_ptr_equal(b.data, mem);
    assert_int_equal(b.cap, cap);
    assert_int_equal(tp__buf_append(&b, "xy", 2), TP_OK);
    assert_string_equal(b.data, "xy");
    tp__buf_free(&b);
}

static void test_growth_keeps_bytes(void **state)
{
    (void)state;
    tp__buf b = {0};
    for (int i = 0; i < 5000; i++)
        tp__buf_printf(&b, "%04d,", i % 10000);
    assert_int_equal(b.len, 5000 * 5);
    assert_true(b.cap > b.len);
    for (int i = 0; i < 5000; i += 997) {
        char want[8];
        snprintf(want, sizeof want, "%04d,", i);
        assert_memory_equal(b.data + i * 5, want, 5);
    }
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(tp__buf_finish(&b, &s, &len), TP_OK);
    assert_int_equal(len, 25000);
    assert_int_equal(s[len], '\0');
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(s);
    /* The emptied buffer starts again from nothing. */
    tp__buf_puts(&b, "again");
    assert_string_equal(b.data, "again");
    tp__buf_free(&b);
}

static void test_json_escapes(void **state)
{
    (void)state;
    tp__buf b = {0};
    tp__buf_json_str(&b, "a\"b\\c\nd\re\tf\x01g\x1fh/\xc3\xa9");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh/\xc3\xa9\"");
    tp__buf_free(&b);
    tp__buf_json_str(&b, "");
    assert_string_equal(b.data, "\"\"");
    tp__buf_free(&b);
}

static void test_oom_is_sticky(void **state)
{
    (void)state;
    /* A buffer already marked out of memory takes nothing more, and finish reports it
     * without handing out a partial string. */
    tp__buf b = {0};
    tp__buf_puts(&b, "kept?");
    b.oom = true;
    tp__buf_puts(&b, "more");
    assert_int_equal(b.len, 5);
    char *s = (char *)&b;
    assert_int_equal(tp__buf_finish(&b, &s, NULL), TP_ENOMEM);
    assert_ptr_equal(s, (char *)&b);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_byte_appends),
        cmocka_unit_test(test_growth_keeps_bytes),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_oom_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
