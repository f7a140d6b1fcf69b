/*
 * The FGD fragmentation measure on cases worked out by hand, and the choice of typical pods.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched/frag.h"

/*
 * The node every class below is measured on: model 1, 8 CPUs free, four GPUs with
 * 1000, 600, 300 and 0 milli free, so 1900 milli idle in all.
 */
static void init_node(struct sched_node *n)
{
    static const int free_milli[] = {1000, 600, 300, 0};

    memset(n, 0, sizeof(*n));
    n->name = "n0";
    n->pool = -1;
    n->model = 1;
    n->cpu_milli = 32000;
    n->cpu_free = 8000;
    n->mem_mib = n->mem_free = 65536;
    n->ngpu = 4;
    for (int i = 0; i < n->ngpu; i++)
        n->gpu[i].free_milli = free_milli[i];
}

static void frag_cpu_only_class(void **state)
{
    struct sched_node n;
    struct sched_pod cls = {.cpu_milli = 1000, .num_gpu = 0, .gpu_milli = 0};

    init_node(&n);
    /* A CPU-only pod uses no GPU: all idle milli is fragmented, 1000 + 600 + 300 + 0. */
    assert_float_equal(sched_frag_class(&n, &cls), 1900.0, 1e-9);
}

static void frag_model_not_allowed(void **state)
{
    struct sched_node n;
    struct sched_pod cls = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 500, .models = 1 << 0};

    init_node(&n);
    /* The class runs only on model 0 and the node is model 1: all 1900 idle is fragmented. */
    assert_float_equal(sched_frag_class(&n, &cls), 1900.0, 1e-9);
    /* A node without a model cannot run a class that names models either. */
    n.model = -1;
    assert_float_equal(sched_frag_class(&n, &cls), 1900.0, 1e-9);
    /* But a class that allows any model runs there: only the 300 + 0 below 500 are lost. */
    cls.models = 0;
    assert_float_equal(sched_frag_class(&n, &cls), 300.0, 1e-9);
}

static void frag_lacking_cpu(void **state)
{
    struct sched_node n;
    struct sched_pod cls = {.cpu_milli = 8001, .num_gpu = 1, .gpu_milli = 100};

    init_node(&n);
    /* 8001 CPU milli asked, 8000 free: the pod cannot run, all 1900 idle is fragmented. */
    assert_float_equal(sched_frag_class(&n, &cls), 1900.0, 1e-9);
    /* With exactly the free CPU it runs: GPUs with >= 100 free are 1000, 600, 300; lost: 0. */
    cls.cpu_milli = 8000;
    assert_float_equal(sched_frag_class(&n, &cls), 0.0, 1e-9);
}

static void frag_lacking_gpus(void **state)
{
    struct sched_node n;
    struct sched_pod cls = {.cpu_milli = 1000, .num_gpu = 3, .gpu_milli = 500};

    init_node(&n);
    /* Three GPUs with >= 500 free are needed; only 1000 and 600 qualify: all 1900 is lost. */
    assert_float_equal(sched_frag_class(&n, &cls), 1900.0, 1e-9);
    /* Two whole GPUs: only GPU 0 is whole, so again all 1900. */
    cls.num_gpu = 2;
    cls.gpu_milli = 1000;
    assert_float_equal(sched_frag_class(&n, &cls), 1900.0, 1e-9);
}

static void frag_normal_case(void **state)
{
    struct sched_node n;
    struct sched_pod cls = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 500, .models = 1 << 1};

    init_node(&n);
    /* Model 1 allowed; 1000 and 600 can hold 500, so only 300 + 0 = 300 is fragmented. */
    assert_float_equal(sched_frag_class(&n, &cls), 300.0, 1e-9);
    /* A GPU with exactly the class's milli free can hold it: for 600, lost is 300 + 0. */
    cls.gpu_milli = 600;
    assert_float_equal(sched_frag_class(&n, &cls), 300.0, 1e-9);
    /* For 601, the 600 GPU is lost too: 600 + 300 + 0 = 900. */
    cls.gpu_milli = 601;
    assert_float_equal(sched_frag_class(&n, &cls), 900.0, 1e-9);
    /* Two GPUs of 500: 1000 and 600 qualify (2 >= 2), lost 300. */
    cls.gpu_milli = 500;
    cls.num_gpu = 2;
    assert_float_equal(sched_frag_class(&n, &cls), 300.0, 1e-9);
}

static void frag_node_weighted(void **state)
{
    struct sched_node n;
    struct sched_typical_class cls[2] = {
        {.pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 500}, .weight = 0.75},
        {.pod = {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000}, .weight = 0.25},
    };
    struct sched_typical t = {.cls = cls, .n = 2};

    init_node(&n);
    /*
     * Class 500: lost 300 + 0 = 300. Class 1000: only GPU 0 can hold it, lost 600 + 300 + 0 = 900.
     * Weighted: 0.75 * 300 + 0.25 * 900 = 225 + 225 = 450.
     */
    assert_float_equal(sched_frag_node(&n, &t), 450.0, 1e-9);

    /* Binding a 600 share onto GPU 0 leaves 400, 600, 300, 0. Class 500: lost 400 + 300 = 700;
     * class 1000: no GPU whole, all 1300 lost. 0.75 * 700 + 0.25 * 1300 = 525 + 325 = 850. */
    n.gpu[0].free_milli = 400;
    assert_float_equal(sched_frag_node(&n, &t), 850.0, 1e-9);

    /* No typical classes: nothing counts as fragmented. */
    t.n = 0;
    assert_float_equal(sched_frag_node(&n, &t), 0.0, 1e-9);
}

/* The class of `t` equal to `want` (memory aside), or NULL. */
static const struct sched_typical_class *find_class(const struct sched_typical *t,
                                                    const struct sched_pod *want)
{
    for (int k = 0; k < t->n; k++) {
        const struct sched_pod *p = &t->cls[k].pod;
        if (p->cpu_milli == want->cpu_milli && p->gpu_milli == want->gpu_milli &&
            p->num_gpu == want->num_gpu && p->models == want->models)
            return &t->cls[k];
    }
    return NULL;
}

/* Build the typical pods of `n` pods, repeating each of `kinds[k]` `count[k]` times. */
static void build_from(const struct sched_pod *kinds, const int *count, int nkinds,
                       struct sched_pod *storage, struct sched_typical *t)
{
    const struct sched_pod *list[256];
    int n = 0;

    for (int k = 0; k < nkinds; k++) {
        for (int i = 0; i < count[k]; i++) {
            storage[n] = kinds[k];
            list[n] = &storage[n];
            n++;
        }
    }
    assert_true(n <= 256);
    assert_int_equal(sched_typical_build(list, n, t), 0);
}

static void typical_cut_at_coverage(void **state)
{
    /* Interleaved so that the most frequent class is not simply the first one seen. */
    const struct sched_pod kinds[] = {
        {.cpu_milli = 4000, .mem_mib = 1, .num_gpu = 2, .gpu_milli = 1000}, /* 6 pods */
        {.cpu_milli = 2000, .mem_mib = 1, .num_gpu = 1, .gpu_milli = 500},  /* 30 pods */
        {.cpu_milli = 1000, .mem_mib = 1, .num_gpu = 1, .gpu_milli = 1000}, /* 60 pods */
        {.cpu_milli = 500, .mem_mib = 1, .num_gpu = 0, .gpu_milli = 0},     /* 4 pods */
    };
    const int count[] = {6, 30, 60, 4};
    struct sched_pod storage[256];
    struct sched_typical t;

    build_from(kinds, count, 4, storage, &t);
    /* 60 + 30 = 90 < 95; + 6 = 96 >= 95: three classes kept, the 4 CPU-only pods dropped. */
    assert_int_equal(t.n, 3);
    /* Most frequent first. */
    assert_int_equal(t.cls[0].pod.cpu_milli, 1000);
    assert_int_equal(t.cls[1].pod.cpu_milli, 2000);
    assert_int_equal(t.cls[2].pod.cpu_milli, 4000);
    /* Weights renormalised over the 96 kept pods. */
    assert_float_equal(t.cls[0].weight, 60.0 / 96.0, 1e-12);
    assert_float_equal(t.cls[1].weight, 30.0 / 96.0, 1e-12);
    assert_float_equal(t.cls[2].weight, 6.0 / 96.0, 1e-12);
    assert_float_equal(t.cls[0].weight + t.cls[1].weight + t.cls[2].weight, 1.0, 1e-12);
    assert_null(find_class(&t, &kinds[3]));
    sched_typical_fini(&t);
    assert_null(t.cls);
    assert_int_equal(t.n, 0);
}

static void typical_exact_coverage(void **state)
{
    const struct sched_pod kinds[] = {
        {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 1000},
        {.cpu_milli = 2000, .num_gpu = 1, .gpu_milli = 200},
    };
    const int count[] = {95, 5};
    struct sched_pod storage[256];
    struct sched_typical t;

    build_from(kinds, count, 2, storage, &t);
    /* 95 of 100 is exactly 95%: the first class alone covers it, with weight 1. */
    assert_int_equal(t.n, 1);
    assert_int_equal(t.cls[0].pod.gpu_milli, 1000);
    assert_float_equal(t.cls[0].weight, 1.0, 1e-12);
    sched_typical_fini(&t);
}

static void typical_ignores_memory(void **state)
{
    /* Same cpu, gpu_milli, num_gpu and models, different memory: one class. */
    const struct sched_pod kinds[] = {
        {.cpu_milli = 1000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 500},
        {.cpu_milli = 1000, .mem_mib = 9999, .num_gpu = 1, .gpu_milli = 500},
    };
    const int count[] = {3, 7};
    struct sched_pod storage[256];
    struct sched_typical t;

    build_from(kinds, count, 2, storage, &t);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.cls[0].pod.cpu_milli, 1000);
    assert_int_equal(t.cls[0].pod.gpu_milli, 500);
    assert_float_equal(t.cls[0].weight, 1.0, 1e-12);
    sched_typical_fini(&t);
}

static void typical_groups_by_each_key(void **state)
{
    /* Each kind differs from the first in exactly one key: cpu, gpu_milli, num_gpu, models. */
    const struct sched_pod kinds[] = {
        {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 500, .models = 0},
        {.cpu_milli = 1001, .num_gpu = 1, .gpu_milli = 500, .models = 0},
        {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 501, .models = 0},
        {.cpu_milli = 1000, .num_gpu = 2, .gpu_milli = 500, .models = 0},
        {.cpu_milli = 1000, .num_gpu = 1, .gpu_milli = 500, .models = 4},
    };
    const int count[] = {20, 20, 20, 20, 20};
    struct sched_pod storage[256];
    struct sched_typical t;

    build_from(kinds, count, 5, storage, &t);
    /* Five classes of 20%: four cover 80% < 95%, so all five are kept, at 1/5 each. */
    assert_int_equal(t.n, 5);
    for (int k = 0; k < 5; k++) {
        const struct sched_typical_class *c = find_class(&t, &kinds[k]);
        assert_non_null(c);
        assert_float_equal(c->weight, 0.2, 1e-12);
    }
    sched_typical_fini(&t);
}

static void typical_empty(void **state)
{
    struct sched_typical t;

    assert_int_equal(sched_typical_build(NULL, 0, &t), 0);
    assert_int_equal(t.n, 0);
    sched_typical_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frag_cpu_only_class),     cmocka_unit_test(frag_model_not_allowed),
        cmocka_unit_test(frag_lacking_cpu),        cmocka_unit_test(frag_lacking_gpus),
        cmocka_unit_test(frag_normal_case),        cmocka_unit_test(frag_node_weighted),
        cmocka_unit_test(typical_cut_at_coverage), cmocka_unit_test(typical_exact_coverage),
        cmocka_unit_test(typical_ignores_memory),  cmocka_unit_test(typical_groups_by_each_key),
        cmocka_unit_test(typical_empty),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
