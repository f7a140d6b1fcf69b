/*
 * gpool declares the CUDA driver API itself so that it builds without the
 * toolkit.  Where the toolkit is installed, this test holds those
 * declarations to cuda.h: every size, offset and constant value must match
 * (and every prototype, checked when cuda_decl_cuda.c compiles).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_decl_facts.h"

static void test_same_facts(void **state)
{
    assert_int_equal(decl_nfacts_ours, decl_nfacts_cuda);
    for (size_t i = 0; i < decl_nfacts_ours; i++) {
        const struct decl_fact *a = &decl_facts_ours[i], *b = &decl_facts_cuda[i];

        assert_string_equal(a->what, b->what);
        if (a->value != b->value)
            fail_msg("%s: gpool declares %lld, cuda.h %lld", a->what, a->value, b->value);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_facts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
