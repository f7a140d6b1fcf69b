/* The pool's history for the dashboard's overview: samples per pool in order, the oldest dropped
 * once a pool's ring is full, a window by time, and figures in GPUs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "server/history.h"

static struct history_sample at(int64_t t, int64_t allocated)
{
    return (struct history_sample){
        .t_ms = t, .gpus = 8000, .allocated = allocated, .used = 250, .swapped = 500};
}

static json_t *samples_of(json_t *h, size_t pool)
{
    return json_object_get(json_array_get(json_object_get(h, "pools"), pool), "samples");
}

static void pools_keep_their_samples_in_order(void **state)
{
    struct history *h = history_new();
    struct history_sample a = at(1000, 1500), b = at(2000, 2000), c = at(1000, 0);
    json_t *out, *row;

    history_add(h, "H100", &a);
    history_add(h, "A100", &c);
    history_add(h, "H100", &b);
    out = history_json(h, 0);
    assert_int_equal(json_array_size(json_object_get(out, "pools")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(out, "pools"), 0), "name")),
                        "H100");
    assert_int_equal(json_array_size(samples_of(out, 0)), 2);
    row = json_array_get(samples_of(out, 0), 1);
    assert_int_equal(json_integer_value(json_array_get(row, 0)), 2000);
    assert_true(json_real_value(json_array_get(row, 1)) == 8.0);  /* GPUs */
    assert_true(json_real_value(json_array_get(row, 2)) == 2.0);  /* allocated */
    assert_true(json_real_value(json_array_get(row, 3)) == 0.25); /* used */
    assert_true(json_real_value(json_array_get(row, 5)) == 0.5);  /* swapped */
    assert_int_equal(json_integer_value(json_object_get(out, "interval_s")),
                     HISTORY_INTERVAL_MS / 1000);
    json_decref(out);
    history_free(h);
}

static void a_full_ring_drops_the_oldest(void **state)
{
    struct history *h = history_new();
    json_t *out, *rows;

    for (int i = 0; i < HISTORY_SAMPLES + 5; i++) {
        struct history_sample s = at((int64_t)i * 10, i);

        history_add(h, "p", &s);
    }
    out = history_json(h, 0);
    rows = samples_of(out, 0);
    assert_int_equal(json_array_size(rows), HISTORY_SAMPLES);
    assert_int_equal(json_integer_value(json_array_get(json_array_get(rows, 0), 0)), 50);
    assert_int_equal(
        json_integer_value(json_array_get(json_array_get(rows, HISTORY_SAMPLES - 1), 0)),
        (HISTORY_SAMPLES + 4) * 10);
    json_decref(out);
    history_free(h);
}

static void a_window_keeps_the_recent_samples(void **state)
{
    struct history *h = history_new();
    json_t *out;

    for (int i = 1; i <= 10; i++) {
        struct history_sample s = at((int64_t)i * 1000, 0);

        history_add(h, "p", &s);
    }
    out = history_json(h, 7000);
    assert_int_equal(json_array_size(samples_of(out, 0)), 4);
    json_decref(out);
    history_free(h);
}

static void pools_past_the_cap_are_not_kept(void **state)
{
    struct history *h = history_new();
    json_t *out;
    char name[16];

    for (int i = 0; i < HISTORY_POOLS + 3; i++) {
        struct history_sample s = at(1, 0);

        snprintf(name, sizeof(name), "pool-%d", i);
        history_add(h, name, &s);
    }
    out = history_json(h, 0);
    assert_int_equal(json_array_size(json_object_get(out, "pools")), HISTORY_POOLS);
    json_decref(out);
    history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pools_keep_their_samples_in_order),
        cmocka_unit_test(a_full_ring_drops_the_oldest),
        cmocka_unit_test(a_window_keeps_the_recent_samples),
        cmocka_unit_test(pools_past_the_cap_are_not_kept),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
