/* test_errors.c: the error table (tp_strerror, tp_err_name), tp_errinfo, close reason
 * names and the version functions. These are the strings users log and grep for, so they
 * must exist for every code, be distinct, and agree with the table they come from. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

/* The table, expanded into data the tests can walk. */
typedef struct err_row {
    int code;
    const char *name; /* "TP_" #NAME */
    const char *msg;
} err_row;

#define ROW(name, num, msg) {TP_##name, "TP_" #name, msg},
static const err_row k_errs[] = {TP_ERR_MAP(ROW)};
#undef ROW
#define N_ERRS (sizeof k_errs / sizeof k_errs[0])

typedef struct reason_row {
    int reason;
    const char *name;
} reason_row;

#define RROW(name, num, str) {TP_CLOSE_##name, str},
static const reason_row k_reasons[] = {TP_CLOSE_REASON_MAP(RROW)};
#undef RROW
#define N_REASONS (sizeof k_reasons / sizeof k_reasons[0])

static void test_every_code_has_name_and_message(void **state)
{
    for (size_t i = 0; i < N_ERRS; i++) {
        const char *name = tp_err_name(k_errs[i].code);
        const char *msg = tp_strerror(k_errs[i].code);
        assert_non_null(name);
        assert_non_null(msg);
        /* Both come from the same table, so they must be exactly the table's text. */
        assert_string_equal(name, k_errs[i].name);
        assert_string_equal(msg, k_errs[i].msg);
        assert_true(strncmp(name, "TP_", 3) == 0);
        assert_true(strlen(msg) > 0);
        /* Codes are negative, numbered explicitly. */
        assert_true(k_errs[i].code < 0);
    }
}

static void test_names_and_codes_are_distinct(void **state)
{
    for (size_t i = 0; i < N_ERRS; i++) {
        for (size_t j = i + 1; j < N_ERRS; j++) {
            assert_int_not_equal(k_errs[i].code, k_errs[j].code);
            assert_string_not_equal(tp_err_name(k_errs[i].code), tp_err_name(k_errs[j].code));
            assert_string_not_equal(tp_strerror(k_errs[i].code), tp_strerror(k_errs[j].code));
        }
    }
}

static void test_codes_are_dense_from_minus_one(void **state)
{
    /* Append-only numbering: -1, -2, ... with no gaps, so "one past the last" is unknown. */
    for (size_t i = 0; i < N_ERRS; i++)
        assert_int_equal(k_errs[i].code, -(int)(i + 1));
}

static void test_unknown_codes(void **state)
{
    const int unknown[] = {-(int)N_ERRS - 1, -1000, 12345, INT_MIN, INT_MAX, 101};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(tp_strerror(unknown[i]), "unknown error");
        assert_string_equal(tp_err_name(unknown[i]), "TP_UNKNOWN");
    }
    /* TP_OK is not in the table; whatever it is called, it must not be NULL. */
    assert_non_null(tp_strerror(TP_OK));
    assert_non_null(tp_err_name(TP_OK));
}

static void test_errinfo_set(void **state)
{
    tp_errinfo info;
    memset(&info, 0x5a, sizeof info);
    tp_err r = tp_errinfo_set(&info, TP_ETIMEDOUT, 110, "waited %d ms for %s", 250, "key");
    assert_int_equal(r, TP_ETIMEDOUT);
    assert_int_equal(info.code, TP_ETIMEDOUT);
    assert_int_equal(info.sys_errno, 110);
    assert_string_equal(info.msg, "waited 250 ms for key");

    /* NULL info is a no-op that still returns the code (for `return tp_errinfo_set(...)`). */
    assert_int_equal(tp_errinfo_set(NULL, TP_EOPEN, 0, "x %s", "y"), TP_EOPEN);
}

static void test_errinfo_set_truncates_long_messages(void **state)
{
    char big[TP_ERRMSG_SIZE * 3];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tp_errinfo info;
    memset(&info, 0, sizeof info);
    assert_int_equal(tp_errinfo_set(&info, TP_ESYS, 5, "%s", big), TP_ESYS);
    /* Always NUL-terminated inside the buffer, and as much as fits is kept. */
    assert_int_equal(strlen(info.msg), TP_ERRMSG_SIZE - 1);
    assert_int_equal(info.msg[TP_ERRMSG_SIZE - 1], '\0');
}

static void test_errinfo_clear(void **state)
{
    tp_errinfo info;
    tp_errinfo_set(&info, TP_ENOMEM, 12, "boom");
    info.backend_code = 42;
    tp_errinfo_clear(&info);
    assert_int_equal(info.code, TP_OK);
    assert_int_equal(info.sys_errno, 0);
    assert_int_equal(info.backend_code, 0);
    assert_string_equal(info.msg, "");
    tp_errinfo_clear(NULL); /* no-op, must not crash */
}

static void test_close_reason_names(void **state)
{
    assert_int_equal(N_REASONS, TP_CLOSE__COUNT);
    for (size_t i = 0; i < N_REASONS; i++) {
        assert_int_equal(k_reasons[i].reason, (int)i);
        const char *name = tp_close_reason_name(k_reasons[i].reason);
        assert_non_null(name);
        assert_string_equal(name, k_reasons[i].name);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(name, tp_close_reason_name(k_reasons[j].reason));
    }
    assert_string_equal(tp_close_reason_name(-1), "unknown");
    assert_string_equal(tp_close_reason_name(TP_CLOSE__COUNT), "unknown");
    assert_string_equal(tp_close_reason_name(INT_MAX), "unknown");
    assert_string_equal(tp_close_reason_name(INT_MIN), "unknown");
}

static void test_version(void **state)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TP_VERSION_MAJOR, TP_VERSION_MINOR,
             TP_VERSION_PATCH);
    assert_non_null(tp_version_string());
    assert_string_equal(tp_version_string(), want);
    assert_int_equal(tp_version(), (unsigned)TP_VERSION_HEX);
    assert_int_equal(tp_version() >> 16, TP_VERSION_MAJOR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_name_and_message),
        cmocka_unit_test(test_names_and_codes_are_distinct),
        cmocka_unit_test(test_codes_are_dense_from_minus_one),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_errinfo_set),
        cmocka_unit_test(test_errinfo_set_truncates_long_messages),
        cmocka_unit_test(test_errinfo_clear),
        cmocka_unit_test(test_close_reason_names),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
