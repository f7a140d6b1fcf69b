/* Sizes as people write them, and the ones that must be refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/units.h"

static void test_sizes(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } cases[] = {
        {"0", 0},
        {"512", 512},
        {"4KiB", 4096},
        {"20GiB", 20ull << 30},
        {"1.5GiB", 3ull << 29},
        {"80GiB", 80ull << 30},
        {"2TiB", 2ull << 40},
        {"300MB", 300000000},
        {"1GB", 1000000000},
        {"7B", 7},
    };
    uint64_t b;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(units_parse_bytes(cases[i].text, &b), 0);
        assert_int_equal(b, cases[i].bytes);
    }
}

static void test_bad_sizes_are_refused(void **state)
{
    static const char *bad[] = {"", "lots", "-1", "+5", " 5", "5 GiB", "5gib", "5XB", "0.5", "1e",
                                "nan", "inf", "GiB"};
    uint64_t b = 42;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(units_parse_bytes(bad[i], &b), -EINVAL);
    assert_int_equal(units_parse_bytes("17000000TiB", &b), -ERANGE);
    assert_int_equal(b, 42); /* nothing written on error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_bad_sizes_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
