/*
 * Reading trace files: node and pod lists written at run time into a temporary folder, read back,
 * and every kind of bad input refused with the file, line and column named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sim/trace.h"

#define NODE_HEADER "sn,cpu_milli,memory_mib,gpu,model\n"
#define POD_HEADER "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"

/* The temporary folder of this run, and the files written into it. */
static char tmpdir[] = "/tmp/gpool-test-trace-XXXXXX";
static char *written[64];
static int nwritten;

static int make_dir(void **state)
{
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_dir(void **state)
{
    for (int i = 0; i < nwritten; i++) {
        unlink(written[i]);
        free(written[i]);
    }
    nwritten = 0;
    return rmdir(tmpdir);
}

/* Write `text` to a file `name` in the temporary folder; returns its path (kept until the end). */
static const char *fixture(const char *name, const char *text)
{
    char *path;
    FILE *f;

    assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    assert_true(nwritten < (int)(sizeof(written) / sizeof(written[0])));
    written[nwritten++] = path;
    return path;
}

/* The message starts with "<path>:<line>: " and, when `what` is given, contains it. */
static void expect_error(const char *err, const char *path, int line, const char *what)
{
    char prefix[512];

    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("expected '%s...', got '%s'", prefix, err);
    if (what != NULL && strstr(err, what) == NULL)
        fail_msg("expected '%s' in '%s'", what, err);
}

/* Reading `text` as a node list fails at `line` naming `what`, and leaves `out` empty. */
static void nodes_fail(const char *name, const char *text, int line, const char *what)
{
    const char *path = fixture(name, text);
    struct trace_nodes out;
    char err[512] = "";

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(trace_read_nodes(path, &out, err, sizeof(err)), -1);
    expect_error(err, path, line, what);
    assert_int_equal(out.cluster.nnodes, 0);
    assert_null(out.cluster.nodes);
    assert_int_equal(out.cluster.nmodels, 0);
    assert_int_equal(out.nnames, 0);
    assert_null(out.names);
}

/* Reading `text` as a pod list fails at `line` naming `what`, and leaves `out` empty. */
static void pods_fail(const char *name, const char *text, int line, const char *what)
{
    const char *path = fixture(name, text);
    struct trace_nodes nodes = {0};
    struct trace_pods out;
    char err[512] = "";

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(trace_read_pods(path, &nodes, &out, err, sizeof(err)), -1);
    expect_error(err, path, line, what);
    assert_int_equal(out.npods, 0);
    assert_null(out.pods);
    trace_nodes_fini(&nodes);
}

/* ---- good files ---- */

static void nodes_any_column_order(void **state)
{
    const char *path = fixture("nodes_order.csv", "gpu,model,note,memory_mib,sn,cpu_milli\n"
                                                  "2,A100,first,1024,n1,32000\n"
                                                  "0,,cpu only,512,n2,8000\n"
                                                  "1,V100,,256,n3,4000\n"
                                                  "8,A100,big,2048,n4,96000\n");
    struct trace_nodes t;
    const struct sched_node *n;
    char err[256] = "";

    assert_int_equal(trace_read_nodes(path, &t, err, sizeof(err)), 0);
    assert_int_equal(t.cluster.nnodes, 4);
    assert_int_equal(t.cluster.nmodels, 2);
    assert_string_equal(t.cluster.models[0], "A100");
    assert_string_equal(t.cluster.models[1], "V100");

    n = &t.cluster.nodes[0];
    assert_string_equal(n->name, "n1");
    assert_int_equal(n->cpu_milli, 32000);
    assert_int_equal(n->cpu_free, 32000);
    assert_int_equal(n->mem_mib, 1024);
    assert_int_equal(n->mem_free, 1024);
    assert_int_equal(n->ngpu, 2);
    assert_int_equal(n->model, 0);
    assert_int_equal(n->pool, -1);
    assert_int_equal(n->gpu[0].free_milli, SCHED_MILLI);
    assert_int_equal(n->gpu[1].free_milli, SCHED_MILLI);

    n = &t.cluster.nodes[1];
    assert_string_equal(n->name, "n2");
    assert_int_equal(n->ngpu, 0);
    assert_int_equal(n->model, -1);

    assert_string_equal(t.cluster.nodes[2].name, "n3");
    assert_int_equal(t.cluster.nodes[2].model, 1);
    assert_int_equal(t.cluster.nodes[2].mem_mib, 256);
    assert_int_equal(t.cluster.nodes[3].model, 0);
    assert_int_equal(t.cluster.nodes[3].ngpu, 8);
    assert_int_equal(t.cluster.nodes[3].cpu_milli, 96000);
    trace_nodes_fini(&t);
    assert_int_equal(t.cluster.nnodes, 0);
}

static void nodes_without_model_column(void **state)
{
    const char *path = fixture("nodes_nomodel.csv", "sn,cpu_milli,memory_mib,gpu\n"
                                                    "a,1000,10,1\n");
    struct trace_nodes t;
    char err[256] = "";

    assert_int_equal(trace_read_nodes(path, &t, err, sizeof(err)), 0);
    assert_int_equal(t.cluster.nnodes, 1);
    assert_int_equal(t.cluster.nodes[0].model, -1);
    assert_int_equal(t.cluster.nmodels, 0);
    trace_nodes_fini(&t);
}

static void pods_with_spec(void **state)
{
    const char *npath = fixture("nodes_for_spec.csv", NODE_HEADER "n1,32000,1024,2,A100\n"
                                                                  "n2,32000,1024,2,V100\n");
    const char *ppath = fixture("pods_spec.csv", "extra,gpu_spec,gpu_milli,num_gpu,memory_mib,"
                                                 "cpu_milli,name\n"
                                                 "x,A100,1000,2,100,4000,p1\n"
                                                 "y,V100|A100,500,1,50,1000,p2\n"
                                                 "z,,0,0,10,500,p3\n"
                                                 "w,T4,250,1,20,700,p4\n");
    struct trace_nodes nodes;
    struct trace_pods pods;
    char err[256] = "";

    assert_int_equal(trace_read_nodes(npath, &nodes, err, sizeof(err)), 0);
    assert_int_equal(trace_read_pods(ppath, &nodes, &pods, err, sizeof(err)), 0);
    assert_int_equal(pods.npods, 4);

    assert_string_equal(pods.pods[0].name, "p1");
    assert_int_equal(pods.pods[0].pod.cpu_milli, 4000);
    assert_int_equal(pods.pods[0].pod.mem_mib, 100);
    assert_int_equal(pods.pods[0].pod.num_gpu, 2);
    assert_int_equal(pods.pods[0].pod.gpu_milli, 1000);
    assert_int_equal(pods.pods[0].pod.gpu_mem_bytes, 0);
    assert_int_equal(pods.pods[0].pod.models, 1 << 0);

    assert_string_equal(pods.pods[1].name, "p2");
    assert_int_equal(pods.pods[1].pod.gpu_milli, 500);
    assert_int_equal(pods.pods[1].pod.models, (1 << 0) | (1 << 1));

    /* CPU-only pod, no spec: any model. */
    assert_string_equal(pods.pods[2].name, "p3");
    assert_int_equal(pods.pods[2].pod.num_gpu, 0);
    assert_int_equal(pods.pods[2].pod.gpu_milli, 0);
    assert_int_equal(pods.pods[2].pod.models, 0);

    /* A model no node has is added to the table. */
    assert_int_equal(nodes.cluster.nmodels, 3);
    assert_string_equal(nodes.cluster.models[2], "T4");
    assert_int_equal(pods.pods[3].pod.models, 1 << 2);
    trace_pods_fini(&pods);
    trace_nodes_fini(&nodes);
}

static void pods_without_spec_column(void **state)
{
    const char *path = fixture("pods_nospec.csv", "num_gpu,name,gpu_milli,cpu_milli,memory_mib\n"
                                                  "1,a,300,1000,10\n"
                                                  "4,b,1000,8000,20\n");
    struct trace_nodes nodes = {0};
    struct trace_pods pods;
    char err[256] = "";

    assert_int_equal(trace_read_pods(path, &nodes, &pods, err, sizeof(err)), 0);
    assert_int_equal(pods.npods, 2);
    assert_string_equal(pods.pods[0].name, "a");
    assert_int_equal(pods.pods[0].pod.gpu_milli, 300);
    assert_int_equal(pods.pods[0].pod.models, 0);
    assert_string_equal(pods.pods[1].name, "b");
    assert_int_equal(pods.pods[1].pod.num_gpu, 4);
    assert_int_equal(pods.pods[1].pod.cpu_milli, 8000);
    assert_int_equal(pods.pods[1].pod.models, 0);
    assert_int_equal(nodes.cluster.nmodels, 0);
    trace_pods_fini(&pods);
    trace_nodes_fini(&nodes);
}

static void crlf_and_blank_lines(void **state)
{
    const char *path = fixture("nodes_crlf.csv", "sn,cpu_milli,memory_mib,gpu,model\r\n"
                                                 "n1,1000,100,2,A100\r\n"
                                                 "\r\n"
                                                 "n2,2000,200,1,V100\r\n");
    struct trace_nodes t;
    char err[256] = "";

    assert_int_equal(trace_read_nodes(path, &t, err, sizeof(err)), 0);
    assert_int_equal(t.cluster.nnodes, 2);
    assert_string_equal(t.cluster.nodes[0].name, "n1");
    assert_int_equal(t.cluster.nodes[0].ngpu, 2);
    assert_string_equal(t.cluster.nodes[1].name, "n2");
    assert_int_equal(t.cluster.nodes[1].mem_mib, 200);
    /* The last column carries no stray carriage return. */
    assert_int_equal(t.cluster.nmodels, 2);
    assert_string_equal(t.cluster.models[0], "A100");
    assert_string_equal(t.cluster.models[1], "V100");
    trace_nodes_fini(&t);
}

/* ---- errors ---- */

static void error_missing_column(void **state)
{
    nodes_fail("nodes_nogpu.csv", "sn,cpu_milli,memory_mib\nn1,1,1\n", 1, "'gpu'");
    pods_fail("pods_nongpu.csv", "name,cpu_milli,memory_mib,gpu_milli\np,1,1,0\n", 1, "'num_gpu'");
}

static void error_negative(void **state)
{
    nodes_fail("nodes_neg.csv", NODE_HEADER "n1,1000,100,1,A\nn2,-5,100,1,A\n", 3, "'cpu_milli'");
    pods_fail("pods_neg.csv", POD_HEADER "p1,1000,10,1,500,\np2,1000,-1,1,500,\n", 3,
              "'memory_mib'");
}

static void error_not_a_number(void **state)
{
    nodes_fail("nodes_nan.csv", NODE_HEADER "n1,1000,lots,1,A\n", 2, "'memory_mib'");
    nodes_fail("nodes_frac.csv", NODE_HEADER "n1,1000,100,1.5,A\n", 2, "'gpu'");
    pods_fail("pods_nan.csv", POD_HEADER "p1,1000,10,one,500,\n", 2, "'num_gpu'");
    pods_fail("pods_emptyval.csv", POD_HEADER "p1,,10,1,500,\n", 2, "'cpu_milli'");
}

static void error_gpu_milli_over(void **state)
{
    pods_fail("pods_over.csv", POD_HEADER "p1,1000,10,1,1000,\np2,1000,10,1,1001,\n", 3,
              "'gpu_milli'");
}

static void error_gpu_pod_without_milli(void **state)
{
    pods_fail("pods_zero.csv", POD_HEADER "p1,1000,10,2,0,\n", 2, "'gpu_milli'");
}

static void error_cpu_pod_with_milli(void **state)
{
    pods_fail("pods_cpu.csv", POD_HEADER "p1,1000,10,0,0,\np2,1000,10,0,500,\n", 3, "'gpu_milli'");
}

static void error_empty_file(void **state)
{
    nodes_fail("nodes_empty.csv", "", 1, "empty");
    pods_fail("pods_empty.csv", "", 1, "empty");
}

static void error_header_only(void **state)
{
    nodes_fail("nodes_header.csv", NODE_HEADER, 2, NULL);
    pods_fail("pods_header.csv", POD_HEADER, 2, NULL);
}

static void error_duplicate_node(void **state)
{
    nodes_fail("nodes_dup.csv", NODE_HEADER "n1,1,1,1,A\nn2,1,1,1,A\nn1,1,1,1,A\n", 4, "'sn'");
}

static void error_short_row(void **state)
{
    nodes_fail("nodes_short.csv", NODE_HEADER "n1,1000,100\n", 2, "'gpu'");
}

static void error_lines_count_blank_lines(void **state)
{
    /* Blank lines 3 and 4 still count: the bad row is on line 5. */
    nodes_fail("nodes_blank.csv", NODE_HEADER "n1,1,1,1,A\n\n\nn2,1,x,1,A\n", 5, "'memory_mib'");
    pods_fail("pods_blank.csv", POD_HEADER "\np1,1,1,1,1,\n\np2,1,1,1,1001,\n", 5, "'gpu_milli'");
}

static void error_lines_count_crlf(void **state)
{
    nodes_fail("nodes_crlf_bad.csv",
               "sn,cpu_milli,memory_mib,gpu,model\r\nn1,1,1,1,A\r\n\r\nn2,1,1,-2,A\r\n", 4,
               "'gpu'");
    pods_fail("pods_crlf_bad.csv",
              "name,cpu_milli,memory_mib,num_gpu,gpu_milli\r\np1,1,1,1,1\r\np2,1,1,0,5\r\n", 3,
              "'gpu_milli'");
}

static void error_missing_file(void **state)
{
    struct trace_nodes t;
    char err[512] = "", path[512];

    snprintf(path, sizeof(path), "%s/no-such-file.csv", tmpdir);
    assert_int_equal(trace_read_nodes(path, &t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(t.cluster.nnodes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nodes_any_column_order),   cmocka_unit_test(nodes_without_model_column),
        cmocka_unit_test(pods_with_spec),           cmocka_unit_test(pods_without_spec_column),
        cmocka_unit_test(crlf_and_blank_lines),     cmocka_unit_test(error_missing_column),
        cmocka_unit_test(error_negative),           cmocka_unit_test(error_not_a_number),
        cmocka_unit_test(error_gpu_milli_over),     cmocka_unit_test(error_gpu_pod_without_milli),
        cmocka_unit_test(error_cpu_pod_with_milli), cmocka_unit_test(error_empty_file),
        cmocka_unit_test(error_header_only),        cmocka_unit_test(error_duplicate_node),
        cmocka_unit_test(error_short_row),          cmocka_unit_test(error_lines_count_blank_lines),
        cmocka_unit_test(error_lines_count_crlf),   cmocka_unit_test(error_missing_file),
    };

    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
