/*
 * The fill experiment on a small cluster and pod list built by hand: seeds replay exactly, the
 * arrived demand meets the inflation target, curves behave, and threads change nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sim/fill.h"

#define NNODES 4
#define GPUS_PER_NODE 2
#define CAPACITY (NNODES * GPUS_PER_NODE * SCHED_MILLI) /* 8000 milli */
#define MAX_PODS 16
#define NPOLICIES SCHED_POLICY_COUNT

static char err[256];

struct world {
    struct sched_node node[NNODES];
    struct trace_nodes nodes;
    char pod_name[MAX_PODS][16];
    struct trace_pod pod[MAX_PODS];
    struct trace_pods pods;
};

/* Four nodes of two GPUs and 32 CPUs; node 3 lacks CPU for the largest pods. */
static void world_nodes(struct world *w)
{
    memset(w, 0, sizeof(*w));
    for (int i = 0; i < NNODES; i++) {
        struct sched_node *n = &w->node[i];
        n->name = "node";
        n->pool = -1;
        n->model = -1;
        n->cpu_milli = n->cpu_free = i == 3 ? 4000 : 32000;
        n->mem_mib = n->mem_free = 65536;
        n->ngpu = GPUS_PER_NODE;
        for (int g = 0; g < n->ngpu; g++)
            n->gpu[g].free_milli = SCHED_MILLI;
    }
    w->nodes.cluster.nodes = w->node;
    w->nodes.cluster.nnodes = NNODES;
}

static void world_pods(struct world *w, const struct sched_pod *pods, int n)
{
    assert_true(n <= MAX_PODS);
    for (int i = 0; i < n; i++) {
        /* Names out of list order, so that sorting by name matters. */
        snprintf(w->pod_name[i], sizeof(w->pod_name[i]), "p%02d", (n - i) % n);
        w->pod[i].name = w->pod_name[i];
        w->pod[i].pod = pods[i];
    }
    w->pods.pods = w->pod;
    w->pods.npods = n;
}

/* Pods that all ask for exactly one GPU's worth (1000 milli) in different shapes. */
static const struct sched_pod uniform[] = {
    {.cpu_milli = 1000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 1000},
    {.cpu_milli = 2000, .mem_mib = 100, .num_gpu = 2, .gpu_milli = 500},
    {.cpu_milli = 8000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 1000},
    {.cpu_milli = 500, .mem_mib = 100, .num_gpu = 2, .gpu_milli = 500},
    {.cpu_milli = 1000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 1000},
    {.cpu_milli = 3000, .mem_mib = 100, .num_gpu = 2, .gpu_milli = 500},
};
#define NUNIFORM ((int)(sizeof(uniform) / sizeof(uniform[0])))

/* A mixed workload: shares, whole GPUs, pairs and CPU-only pods. */
static const struct sched_pod mixed[] = {
    {.cpu_milli = 1000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 250},
    {.cpu_milli = 2000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 500},
    {.cpu_milli = 4000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 1000},
    {.cpu_milli = 8000, .mem_mib = 100, .num_gpu = 2, .gpu_milli = 1000},
    {.cpu_milli = 500, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 700},
    {.cpu_milli = 3000, .mem_mib = 100, .num_gpu = 0, .gpu_milli = 0},
    {.cpu_milli = 1000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 300},
    {.cpu_milli = 6000, .mem_mib = 100, .num_gpu = 1, .gpu_milli = 1000},
};
#define NMIXED ((int)(sizeof(mixed) / sizeof(mixed[0])))

static void check_curve(const struct fill_result *r)
{
    for (int b = 0; b < FILL_BUCKETS; b++) {
        assert_true(r->curve.alloc_pct[b] >= 0.0);
        assert_true(100.0 - r->curve.alloc_pct[b] >= 0.0);
        assert_true(r->curve.frag_pct[b] >= 0.0);
        if (b > 0 && r->curve.alloc_pct[b] < r->curve.alloc_pct[b - 1])
            fail_msg("seed %llu: alloc_pct falls from %.2f to %.2f at bucket %d",
                     (unsigned long long)r->seed, r->curve.alloc_pct[b - 1], r->curve.alloc_pct[b],
                     b);
    }
}

static void same_seed_same_result(void **state)
{
    struct world w;
    struct fill_setup s;

    world_nodes(&w);
    world_pods(&w, mixed, NMIXED);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), 0);
    for (int p = 0; p < NPOLICIES; p++) {
        struct fill_result a, b;
        fill_run(&s, (enum sched_policy)p, 7, &a);
        fill_run(&s, (enum sched_policy)p, 7, &b);
        assert_int_equal(a.seed, 7);
        assert_int_equal(a.pods_arrived, b.pods_arrived);
        assert_int_equal(a.pods_failed, b.pods_failed);
        assert_memory_equal(&a.curve, &b.curve, sizeof(a.curve));
    }
    /* The cluster given to the experiment is left as it was: full capacity. */
    for (int i = 0; i < NNODES; i++) {
        assert_int_equal(w.node[i].gpu[0].free_milli, SCHED_MILLI);
        assert_int_equal(w.node[i].cpu_free, w.node[i].cpu_milli);
    }
    fill_setup_fini(&s);
}

static void seeds_differ(void **state)
{
    struct world w;
    struct fill_setup s;
    struct fill_result first, other;
    bool differ = false;

    world_nodes(&w);
    world_pods(&w, mixed, NMIXED);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), 0);
    fill_run(&s, SCHED_POLICY_BESTFIT, 1, &first);
    for (uint64_t seed = 2; seed < 10 && !differ; seed++) {
        fill_run(&s, SCHED_POLICY_BESTFIT, seed, &other);
        differ = other.pods_arrived != first.pods_arrived ||
                 memcmp(&other.curve, &first.curve, sizeof(first.curve)) != 0;
    }
    assert_true(differ);
    fill_setup_fini(&s);
}

/*
 * Every pod asks for 1000 milli of the 8000, so the arrived count is exactly the number of pods
 * whose demand reaches the target without passing it: floor(inflate * 8000 / 1000).
 */
static void arrived_meets_target(void **state)
{
    static const struct {
        double inflate;
        int arrived;
    } cases[] = {
        {1.3, 10}, /* 6 pods grown by copies: 10 * 1000 <= 10400 < 11 * 1000 */
        {1.0, 8},  /* 8000 exactly: 8 * 1000 <= 8000 < 9000 */
        {0.5, 4},  /* 6 pods cut: 4000 <= 4000 < 5000 */
        {0.49, 3}, /* 3000 <= 3920 < 4000 */
    };
    struct world w;

    world_nodes(&w);
    world_pods(&w, uniform, NUNIFORM);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fill_setup s;

        assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, cases[i].inflate, err, sizeof(err)),
                         0);
        assert_int_equal(s.capacity_milli, CAPACITY);
        for (int p = 0; p < NPOLICIES; p++) {
            for (uint64_t seed = 0; seed < 5; seed++) {
                struct fill_result r;
                int64_t demand;

                fill_run(&s, (enum sched_policy)p, seed, &r);
                assert_int_equal(r.pods_arrived, cases[i].arrived);
                demand = r.pods_arrived * SCHED_MILLI;
                assert_true(demand <= cases[i].inflate * CAPACITY);
                assert_true(demand + SCHED_MILLI > cases[i].inflate * CAPACITY);
                /* Past 100% of the capacity, the pods beyond it cannot all be placed. */
                if (demand > CAPACITY)
                    assert_true(r.pods_failed >= (demand - CAPACITY) / SCHED_MILLI);
                assert_true(r.pods_failed <= r.pods_arrived);
                check_curve(&r);
            }
        }
        fill_setup_fini(&s);
    }
}

static void curves_behave(void **state)
{
    struct world w;
    struct fill_setup s;

    world_nodes(&w);
    world_pods(&w, mixed, NMIXED);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), 0);
    for (int p = 0; p < NPOLICIES; p++) {
        for (uint64_t seed = 0; seed < 8; seed++) {
            struct fill_result r;
            fill_run(&s, (enum sched_policy)p, seed, &r);
            check_curve(&r);
            /* Arrivals reach 130% of the capacity, so some pods must have failed. */
            assert_true(r.pods_failed > 0);
            /* Something was allocated by the end. */
            assert_true(r.curve.alloc_pct[FILL_BUCKETS - 1] > 0.0);
        }
    }
    fill_setup_fini(&s);
}

static void threads_change_nothing(void **state)
{
    struct world w;
    struct fill_setup s;
    struct fill_result one[6], two[6], single;

    world_nodes(&w);
    world_pods(&w, mixed, NMIXED);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), 0);
    for (int p = 0; p < NPOLICIES; p++) {
        memset(one, 0, sizeof(one));
        memset(two, 0xff, sizeof(two));
        fill_run_seeds(&s, (enum sched_policy)p, 100, 6, 1, one);
        fill_run_seeds(&s, (enum sched_policy)p, 100, 6, 2, two);
        assert_memory_equal(one, two, sizeof(one));
        /* Results come in seed order, each as fill_run gives it. */
        for (int i = 0; i < 6; i++) {
            assert_int_equal(two[i].seed, 100 + i);
            fill_run(&s, (enum sched_policy)p, 100 + (uint64_t)i, &single);
            assert_memory_equal(&single, &two[i], sizeof(single));
        }
    }
    fill_setup_fini(&s);
}

/* offline-ffd: its own name, the same result for the same seed, and a curve that never drops. */
static void offline_ffd_behaves(void **state)
{
    struct world w;
    struct fill_setup s;
    struct fill_result a, b;
    int id = -1;

    (void)state;
    assert_int_equal(fill_policy_parse("offline-ffd", &id), 0);
    assert_int_equal(id, FILL_OFFLINE_FFD);
    assert_string_equal(fill_policy_name(id), "offline-ffd");
    assert_int_equal(fill_policy_parse("gpool", &id), 0);
    assert_int_equal(id, SCHED_POLICY_GPOOL);
    assert_int_equal(fill_policy_parse("offline", &id), -EINVAL);

    world_nodes(&w);
    world_pods(&w, mixed, NMIXED);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), 0);
    fill_run(&s, FILL_OFFLINE_FFD, 11, &a);
    fill_run(&s, FILL_OFFLINE_FFD, 11, &b);
    assert_memory_equal(&a, &b, sizeof(a));
    check_curve(&a);
    assert_true(a.curve.alloc_pct[0] == 0);
    /* Knowing a quarter of the capacity in advance, it places all of it. */
    assert_true(a.curve.alloc_pct[25] >= 20);
    fill_setup_fini(&s);
}

/* An experiment that cannot measure anything is refused with a reason, not run. */
static void refuses_empty_experiments(void **state)
{
    static const struct sched_pod cpu_only[] = {{.cpu_milli = 1000, .mem_mib = 1024}};
    struct world w;
    struct fill_setup s;

    (void)state;
    world_nodes(&w);
    world_pods(&w, cpu_only, 1);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "asks for no GPUs"));

    world_nodes(&w);
    for (int i = 0; i < NNODES; i++)
        w.node[i].ngpu = 0;
    world_pods(&w, mixed, NMIXED);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no GPUs"));
}

static void mean_of_copies(void **state)
{
    struct world w;
    struct fill_setup s;
    struct fill_result r[3];
    struct fill_curve mean;

    world_nodes(&w);
    world_pods(&w, mixed, NMIXED);
    assert_int_equal(fill_setup_init(&s, &w.nodes, &w.pods, 1.3, err, sizeof(err)), 0);
    fill_run(&s, SCHED_POLICY_FGD, 3, &r[0]);
    r[1] = r[2] = r[0];
    fill_mean(r, 3, &mean);
    for (int b = 0; b < FILL_BUCKETS; b++) {
        assert_float_equal(mean.alloc_pct[b], r[0].curve.alloc_pct[b], 1e-9);
        assert_float_equal(mean.frag_pct[b], r[0].curve.frag_pct[b], 1e-9);
    }
    fill_setup_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_same_result),     cmocka_unit_test(seeds_differ),
        cmocka_unit_test(arrived_meets_target),      cmocka_unit_test(curves_behave),
        cmocka_unit_test(threads_change_nothing),    cmocka_unit_test(mean_of_copies),
        cmocka_unit_test(refuses_empty_experiments),
        cmocka_unit_test(offline_ffd_behaves),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
