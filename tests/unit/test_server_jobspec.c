/* The job a user submits, field by field: what is accepted, and what is refused with which field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/jobspec.h"

static int parse(const char *text, struct jobspec *s, struct api_error *e)
{
    json_t *obj = json_loads(text, 0, NULL);
    int rc;

    assert_non_null(obj);
    rc = jobspec_parse(obj, s, e);
    json_decref(obj);
    return rc;
}

static void test_requests(void **state)
{
    struct jobspec s;
    struct api_error e;

    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"]}", &s, &e), 0);
    assert_int_equal(s.req.kind, SCHED_REQ_NONE);
    assert_int_equal(s.cpu_milli, 1000);
    assert_int_equal(s.mem_mib, 1024);
    assert_int_equal(s.replicas, 1);
    assert_int_equal(s.priority, SCHED_PRIO_TRAIN);
    assert_true(s.preemptible);
    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],\"gpus\":2,\"cpu\":0.5,"
                           "\"memory\":\"2GiB\",\"replicas\":4}", &s, &e), 0);
    assert_int_equal(s.req.kind, SCHED_REQ_WHOLE);
    assert_int_equal(s.req.gpus, 2);
    assert_int_equal(s.cpu_milli, 500);
    assert_int_equal(s.mem_mib, 2048);
    assert_int_equal(s.replicas, 4);
    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],\"gpu\":0.25,"
                           "\"gpu_limit\":1.0,\"priority\":\"interactive\"}", &s, &e), 0);
    assert_int_equal(s.req.kind, SCHED_REQ_FRACTION);
    assert_int_equal(s.req.milli, 250);
    assert_int_equal(s.req.limit_milli, 1000);
    assert_false(s.preemptible);
    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],\"gpu_memory\":\"20GiB\"}",
                           &s, &e), 0);
    assert_int_equal(s.req.kind, SCHED_REQ_MEMORY);
    assert_int_equal(s.req.mem_bytes, 20ull << 30);
    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],\"gpu\":1}", &s, &e), 0);
    assert_int_equal(s.req.kind, SCHED_REQ_WHOLE);
    assert_int_equal(s.walltime_s, 0);
    assert_int_equal(s.retries, 0);
    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],\"walltime_seconds\":7200,"
                           "\"retries\":3}", &s, &e), 0);
    assert_int_equal(s.walltime_s, 7200);
    assert_int_equal(s.retries, 3);
}

/* Memory is whole MiB, rounded up, up to the largest size there is (found by fuzz-request: near
 * 2^64 bytes the rounding wrapped to 0 MiB). */
static void test_memory_rounds_up_without_wrapping(void **state)
{
    struct jobspec s;
    struct api_error e;

    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],\"memory\":1}", &s, &e), 0);
    assert_int_equal(s.mem_mib, 1);
    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],\"memory\":1048577}", &s,
                           &e), 0);
    assert_int_equal(s.mem_mib, 2);
    assert_int_equal(parse("{\"project\":\"p\",\"command\":[\"x\"],"
                           "\"memory\":\"18446744073709549568\"}", &s, &e), 0);
    assert_int_equal(s.mem_mib, 17592186044416LL); /* 2^44 MiB: 2^64 bytes, rounded up */
}

/* A body as the server decodes it: not JSON, a key twice, or a job; the object is the caller's. */
static json_t *decode(const char *body, struct jobspec *s, struct api_error *e)
{
    return jobspec_decode(body, strlen(body), s, e);
}

static void test_decode(void **state)
{
    struct jobspec s;
    struct api_error e;
    json_t *obj;

    assert_null(decode("{\"project\":", &s, &e));
    assert_string_equal(e.code, "bad_json");
    assert_null(decode("{\"project\":\"p\",\"project\":\"q\",\"command\":[\"x\"]}", &s, &e));
    assert_string_equal(e.code, "bad_json");
    assert_null(decode("[]", &s, &e));
    assert_string_equal(e.code, "bad_request");
    assert_non_null(obj = decode("{\"project\":\"p\",\"command\":[\"x\"]}", &s, &e));
    assert_string_equal(s.project, "p");
    json_decref(obj);
}

static void test_refusals_name_the_field(void **state)
{
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"command\":[\"x\"]}", "project"},
        {"{\"project\":\"p\"}", "command"},
        {"{\"project\":\"p\",\"command\":[]}", "command"},
        {"{\"project\":\"p\",\"command\":[1]}", "command"},
        {"{\"project\":\"p b\",\"command\":[\"x\"]}", "project"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpu\":0}", "gpu"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpu\":1.01}", "gpu"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpu\":\"half\"}", "gpu"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpus\":1.5}", "gpus"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpus\":0}", "gpus"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpus\":2,\"gpu\":0.5}", "gpus"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpu\":0.5,\"gpu_memory\":\"1GiB\"}", "gpu"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpus\":1,\"gpu_limit\":1}", "gpu_limit"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"gpu\":0.5,\"gpu_limit\":0.4}", "gpu_limit"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"memory\":\"-1\"}", "memory"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"cpu\":0}", "cpu"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"replicas\":0}", "replicas"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"replicas\":2.5}", "replicas"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"priority\":\"high\"}", "priority"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"preemptible\":\"yes\"}", "preemptible"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"env\":{\"A=B\":\"c\"}}", "env"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"workdir\":\"rel\"}", "workdir"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"colour\":\"red\"}", "colour"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"walltime_seconds\":0}", "walltime_seconds"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"walltime_seconds\":1.5}", "walltime_seconds"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"walltime_seconds\":\"2h\"}", "walltime_seconds"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"walltime_seconds\":40000000}", "walltime_seconds"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"retries\":-1}", "retries"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"retries\":101}", "retries"},
        {"{\"project\":\"p\",\"command\":[\"x\"],\"retries\":true}", "retries"},
    };
    struct jobspec s;
    struct api_error e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&e, 0, sizeof(e));
        if (parse(bad[i].json, &s, &e) == 0)
            fail_msg("accepted: %s", bad[i].json);
        assert_int_equal(e.status, 400);
        if (strcmp(e.field, bad[i].field) != 0)
            fail_msg("%s: field '%s', expected '%s' (%s)", bad[i].json, e.field, bad[i].field,
                     e.message);
        assert_true(strlen(e.message) > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_memory_rounds_up_without_wrapping),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_refusals_name_the_field),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
