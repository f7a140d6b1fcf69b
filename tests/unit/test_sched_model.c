/*
 * The scheduling model's helpers: a job's per-replica pod, the share a pod takes on a GPU,
 * binding and unbinding a pod on a node, priority names and the GPU model table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sched/model.h"

#define GIB ((uint64_t)1 << 30)

static void job_pod_none(void **state)
{
    struct sched_job job = {.cpu_milli = 2000, .mem_mib = 4096, .req = {.kind = SCHED_REQ_NONE}};
    struct sched_pod pod;

    memset(&pod, 0xff, sizeof(pod));
    sched_job_pod(&job, &pod);
    assert_int_equal(pod.cpu_milli, 2000);
    assert_int_equal(pod.mem_mib, 4096);
    assert_int_equal(pod.num_gpu, 0);
    assert_int_equal(pod.gpu_milli, 0);
    assert_int_equal(pod.gpu_mem_bytes, 0);
    assert_int_equal(pod.models, 0);
    assert_int_equal(sched_pod_gpu_demand(&pod), 0);
}

static void job_pod_whole(void **state)
{
    struct sched_job job = {.cpu_milli = 8000,
                            .mem_mib = 1024,
                            .req = {.kind = SCHED_REQ_WHOLE, .gpus = 4, .models = 0x5}};
    struct sched_pod pod;

    sched_job_pod(&job, &pod);
    assert_int_equal(pod.cpu_milli, 8000);
    assert_int_equal(pod.mem_mib, 1024);
    assert_int_equal(pod.num_gpu, 4);
    assert_int_equal(pod.gpu_milli, SCHED_MILLI);
    assert_int_equal(pod.gpu_mem_bytes, 0);
    assert_int_equal(pod.models, 0x5);
    assert_int_equal(sched_pod_gpu_demand(&pod), 4000);
}

static void job_pod_fraction(void **state)
{
    struct sched_job job = {.cpu_milli = 500, .req = {.kind = SCHED_REQ_FRACTION, .milli = 250}};
    struct sched_pod pod;

    sched_job_pod(&job, &pod);
    assert_int_equal(pod.num_gpu, 1);
    assert_int_equal(pod.gpu_milli, 250);
    assert_int_equal(pod.gpu_mem_bytes, 0);
    assert_int_equal(sched_pod_gpu_demand(&pod), 250);
}

static void job_pod_memory(void **state)
{
    struct sched_job job = {.cpu_milli = 500,
                            .req = {.kind = SCHED_REQ_MEMORY, .mem_bytes = 20 * GIB, .models = 2}};
    struct sched_pod pod;

    sched_job_pod(&job, &pod);
    assert_int_equal(pod.num_gpu, 1);
    assert_int_equal(pod.gpu_mem_bytes, 20 * GIB);
    assert_int_equal(pod.models, 2);
    /* The compute share is only known once a GPU is chosen. */
    assert_int_equal(pod.gpu_milli, 0);
}

static void share_on_milli(void **state)
{
    struct sched_pod pod = {.num_gpu = 1, .gpu_milli = 300};
    struct sched_gpu known = {
        .free_milli = 1000, .mem_bytes = 16 * GIB, .mem_free_bytes = 16 * GIB};
    struct sched_gpu unknown = {.free_milli = 1000};

    /* A request by milli takes its milli whatever the GPU's memory. */
    assert_int_equal(sched_pod_share_on(&pod, &known), 300);
    assert_int_equal(sched_pod_share_on(&pod, &unknown), 300);
}

static void share_on_memory(void **state)
{
    struct sched_pod pod = {.num_gpu = 1};
    struct sched_gpu g = {.free_milli = 1000, .mem_bytes = 16 * GIB, .mem_free_bytes = 16 * GIB};

    /* 8 of 16 GiB is exactly half: 500. */
    pod.gpu_mem_bytes = 8 * GIB;
    assert_int_equal(sched_pod_share_on(&pod, &g), 500);
    /* 5 of 16 GiB is 312.5 milli, rounded up to 313. */
    pod.gpu_mem_bytes = 5 * GIB;
    assert_int_equal(sched_pod_share_on(&pod, &g), 313);
    /* One byte still takes one milli. */
    pod.gpu_mem_bytes = 1;
    assert_int_equal(sched_pod_share_on(&pod, &g), 1);
    /* All of the memory is all of the GPU. */
    pod.gpu_mem_bytes = 16 * GIB;
    assert_int_equal(sched_pod_share_on(&pod, &g), 1000);
}

static void share_on_memory_no_room(void **state)
{
    struct sched_pod pod = {.num_gpu = 1, .gpu_mem_bytes = 16 * GIB + 1};
    struct sched_gpu small = {.free_milli = 1000, .mem_bytes = 16 * GIB};
    struct sched_gpu unknown = {.free_milli = 1000, .mem_bytes = 0};

    assert_int_equal(sched_pod_share_on(&pod, &small), -1);
    pod.gpu_mem_bytes = 1 * GIB;
    assert_int_equal(sched_pod_share_on(&pod, &unknown), -1);
}

static void init_node(struct sched_node *n)
{
    memset(n, 0, sizeof(*n));
    n->name = "n0";
    n->pool = -1;
    n->model = 0;
    n->cpu_milli = n->cpu_free = 64000;
    n->mem_mib = n->mem_free = 256 * 1024;
    n->ngpu = 4;
    for (int i = 0; i < n->ngpu; i++) {
        n->gpu[i].free_milli = SCHED_MILLI;
        n->gpu[i].mem_bytes = n->gpu[i].mem_free_bytes = 16 * GIB;
    }
}

static void node_free_counts(void **state)
{
    struct sched_node n;

    init_node(&n);
    n.gpu[1].free_milli = 400;
    n.gpu[3].free_milli = 0;
    /* 1000 + 400 + 1000 + 0 */
    assert_int_equal(sched_node_free_milli(&n), 2400);
    assert_int_equal(sched_node_whole_free(&n), 2);
}

static void bind_takes_resources(void **state)
{
    struct sched_node n;
    struct sched_pod whole = {.cpu_milli = 8000, .mem_mib = 1000, .num_gpu = 2, .gpu_milli = 1000};
    struct sched_pod bymem = {
        .cpu_milli = 1000, .mem_mib = 10, .num_gpu = 1, .gpu_mem_bytes = 4 * GIB};
    struct sched_choice c01 = {.ngpu = 2, .gpu = {0, 1}}, c3 = {.ngpu = 1, .gpu = {3}};

    init_node(&n);
    sched_node_bind(&n, &whole, &c01);
    assert_int_equal(n.cpu_free, 56000);
    assert_int_equal(n.mem_free, 256 * 1024 - 1000);
    assert_int_equal(n.gpu[0].free_milli, 0);
    assert_int_equal(n.gpu[1].free_milli, 0);
    assert_int_equal(n.gpu[2].free_milli, 1000);
    assert_int_equal(n.gpu[2].mem_free_bytes, 16 * GIB);

    /* 4 of 16 GiB: 250 milli, and exactly 4 GiB of device memory. */
    sched_node_bind(&n, &bymem, &c3);
    assert_int_equal(n.gpu[3].free_milli, 750);
    assert_int_equal(n.gpu[3].mem_free_bytes, 12 * GIB);
    assert_int_equal(n.cpu_free, 55000);
}

static void bind_whole_gpu_takes_all_memory(void **state)
{
    struct sched_node n;
    struct sched_pod whole = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000};
    struct sched_pod quarter = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 250};
    struct sched_choice c0 = {.ngpu = 1, .gpu = {0}}, c1 = {.ngpu = 1, .gpu = {1}};

    init_node(&n);
    /* A pod holding all of a GPU's compute holds all of its memory: none is left free. */
    sched_node_bind(&n, &whole, &c0);
    assert_int_equal(n.gpu[0].free_milli, 0);
    assert_int_equal(n.gpu[0].mem_free_bytes, 0);
    /* Likewise four quarters. */
    for (int i = 0; i < 4; i++)
        sched_node_bind(&n, &quarter, &c1);
    assert_int_equal(n.gpu[1].free_milli, 0);
    assert_int_equal(n.gpu[1].mem_free_bytes, 0);
}

static void bind_unbind_round_trip(void **state)
{
    struct sched_node n, orig;
    struct sched_pod whole = {.cpu_milli = 8000, .mem_mib = 1000, .num_gpu = 2, .gpu_milli = 1000};
    struct sched_pod frac = {.cpu_milli = 1500, .mem_mib = 300, .num_gpu = 1, .gpu_milli = 333};
    struct sched_pod bymem = {
        .cpu_milli = 1000, .mem_mib = 10, .num_gpu = 1, .gpu_mem_bytes = 5 * GIB};
    struct sched_pod cpu = {.cpu_milli = 700, .mem_mib = 77};
    struct sched_choice c01 = {.ngpu = 2, .gpu = {0, 1}}, c2 = {.ngpu = 1, .gpu = {2}};
    struct sched_choice none = {.ngpu = 0};

    init_node(&n);
    /* A GPU with unknown memory must round trip too. */
    n.gpu[1].mem_bytes = n.gpu[1].mem_free_bytes = 0;
    memcpy(&orig, &n, sizeof(orig));

    sched_node_bind(&n, &whole, &c01);
    sched_node_bind(&n, &frac, &c2);
    sched_node_bind(&n, &bymem, &c2);
    sched_node_bind(&n, &cpu, &none);
    assert_int_equal(n.gpu[2].free_milli, 1000 - 333 - 313);
    assert_memory_not_equal(&n, &orig, sizeof(n));

    /* Give back in another order than taken. */
    sched_node_unbind(&n, &frac, &c2);
    sched_node_unbind(&n, &cpu, &none);
    sched_node_unbind(&n, &whole, &c01);
    sched_node_unbind(&n, &bymem, &c2);
    assert_int_equal(n.cpu_free, orig.cpu_free);
    assert_int_equal(n.mem_free, orig.mem_free);
    for (int i = 0; i < n.ngpu; i++) {
        assert_int_equal(n.gpu[i].free_milli, orig.gpu[i].free_milli);
        assert_int_equal(n.gpu[i].mem_free_bytes, orig.gpu[i].mem_free_bytes);
        assert_int_equal(n.gpu[i].mem_bytes, orig.gpu[i].mem_bytes);
    }
    assert_memory_equal(&n, &orig, sizeof(n));
}

static void priority_round_trip(void **state)
{
    const enum sched_priority all[] = {SCHED_PRIO_TRAIN, SCHED_PRIO_BUILD, SCHED_PRIO_INTERACTIVE,
                                       SCHED_PRIO_INFERENCE};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        enum sched_priority back = SCHED_PRIO_INFERENCE;
        if (all[i] == SCHED_PRIO_INFERENCE)
            back = SCHED_PRIO_TRAIN;
        assert_int_equal(sched_priority_parse(sched_priority_name(all[i]), &back), 0);
        assert_int_equal(back, all[i]);
    }
    assert_string_equal(sched_priority_name(SCHED_PRIO_TRAIN), "train");
    assert_string_equal(sched_priority_name(SCHED_PRIO_INFERENCE), "inference");
    /* Classes are ordered so that a larger value wins. */
    assert_true(SCHED_PRIO_INFERENCE > SCHED_PRIO_TRAIN);
}

static void priority_bad_name(void **state)
{
    enum sched_priority p = SCHED_PRIO_BUILD;

    assert_int_equal(sched_priority_parse("urgent", &p), -EINVAL);
    assert_int_equal(sched_priority_parse("", &p), -EINVAL);
    assert_int_equal(sched_priority_parse("train ", &p), -EINVAL);
    assert_int_equal(p, SCHED_PRIO_BUILD);
    assert_string_equal(sched_priority_name((enum sched_priority)99), "unknown");
}

static void cluster_model_dedup(void **state)
{
    struct sched_cluster c = {0};

    assert_int_equal(sched_cluster_model(&c, "A100"), 0);
    assert_int_equal(sched_cluster_model(&c, "V100"), 1);
    assert_int_equal(sched_cluster_model(&c, "A100"), 0);
    assert_int_equal(sched_cluster_model(&c, "V100"), 1);
    assert_int_equal(c.nmodels, 2);
    assert_string_equal(c.models[0], "A100");
    assert_string_equal(c.models[1], "V100");
}

static void cluster_model_full(void **state)
{
    static char names[SCHED_MAX_MODELS + 1][16];
    struct sched_cluster c = {0};

    for (int i = 0; i <= SCHED_MAX_MODELS; i++)
        snprintf(names[i], sizeof(names[i]), "M%d", i);
    for (int i = 0; i < SCHED_MAX_MODELS; i++)
        assert_int_equal(sched_cluster_model(&c, names[i]), i);
    assert_int_equal(c.nmodels, SCHED_MAX_MODELS);
    assert_int_equal(sched_cluster_model(&c, names[SCHED_MAX_MODELS]), -ENOSPC);
    assert_int_equal(c.nmodels, SCHED_MAX_MODELS);
    /* A model already in the full table is still found. */
    assert_int_equal(sched_cluster_model(&c, "M17"), 17);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(job_pod_none),
        cmocka_unit_test(job_pod_whole),
        cmocka_unit_test(job_pod_fraction),
        cmocka_unit_test(job_pod_memory),
        cmocka_unit_test(share_on_milli),
        cmocka_unit_test(share_on_memory),
        cmocka_unit_test(share_on_memory_no_room),
        cmocka_unit_test(node_free_counts),
        cmocka_unit_test(bind_takes_resources),
        cmocka_unit_test(bind_whole_gpu_takes_all_memory),
        cmocka_unit_test(bind_unbind_round_trip),
        cmocka_unit_test(priority_round_trip),
        cmocka_unit_test(priority_bad_name),
        cmocka_unit_test(cluster_model_dedup),
        cmocka_unit_test(cluster_model_full),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
